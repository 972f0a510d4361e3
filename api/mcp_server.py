"""`payready mcp`: the API's read tools for AI assistants over MCP (stdio; streamable HTTP optional).

Four tools with JSON argument schemas (built by the mcp SDK from the annotated signatures), each
calling the same service function as the HTTP route: search_customer_interactions
(api.services.search), generate_coaching_report (api.coaching_report.report),
get_interaction_timeline (api.services.timeline) and natural_language_query (api.nlquery.answer).
Bad arguments come back as tool errors (``isError``) with the service's message.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import Field

from api import coaching_report, nlquery, params, services
from common.settings import Settings

Source = Literal["gong", "slack", "hubspot", "salesforce"]
Kind = Literal["call", "thread", "note", "email", "meeting", "task", "event"]
TOOL_NAMES = ("search_customer_interactions", "generate_coaching_report", "get_interaction_timeline",
              "natural_language_query")
INSTRUCTIONS = (
    "Pay Ready's revenue knowledge: Gong calls, Slack threads, HubSpot and Salesforce activity, with persons and "
    "companies resolved across them. Search by meaning, ask questions in plain language (answers cite "
    "interactions), read a person's or company's timeline, and get coaching reports for reps from Gong calls.")


def _time(name: str, raw: Optional[str]) -> Optional[dt.datetime]:
    return params.parse_time(name, raw)


def build_server(settings: Settings) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("payready", instructions=INSTRUCTIONS)

    def call(fn: Callable[[], Any]) -> Any:
        # anticipated failures reach the model as tool errors with our message, not a crash
        from embed_worker.stores import VectorStoreUnavailable

        try:
            return fn()
        except (services.BadRequest, services.NotFound, VectorStoreUnavailable) as exc:
            raise ToolError(str(exc)) from None

    @server.tool(name="search_customer_interactions",
                 description="Semantic search over every customer interaction (call turns, Slack threads, "
                             "CRM notes, emails, meetings). Returns the best passages with their interaction, "
                             "source keys, time, link and similarity score.")
    def search_customer_interactions(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="what to look for, in plain words")],
        limit: Annotated[int, Field(ge=1, le=50, description="how many passages")] = 10,
        sources: Annotated[Optional[list[Source]], Field(description="only these sources")] = None,
    ) -> dict:
        return call(lambda: {"results": services.search(settings, query, k=limit, sources=sources or None)})

    @server.tool(name="generate_coaching_report",
                 description="Coaching metrics from Gong calls: talk ratio, longest monologue, longest customer "
                             "story, interactivity, patience, question rate, filler words and topics, per call and "
                             "averaged per rep, with Gong's own stats beside ours where the call has them.")
    def generate_coaching_report(
        rep_id: Annotated[Optional[str], Field(description="person id (UUID) of the rep; all reps if omitted")] = None,
        from_date: Annotated[Optional[str], Field(description="calls at or after this ISO-8601 date/time")] = None,
        to_date: Annotated[Optional[str], Field(description="calls before this ISO-8601 date/time")] = None,
    ) -> dict:
        return call(lambda: coaching_report.report(settings, rep_id, _time("from_date", from_date),
                                                   _time("to_date", to_date)))

    @server.tool(name="get_interaction_timeline",
                 description="Interactions of one person or company, newest first, with keyset pagination "
                             "(pass next_cursor back as cursor).")
    def get_interaction_timeline(
        entity_id: Annotated[str, Field(description="person or company id (UUID)")],
        from_date: Annotated[Optional[str], Field(description="at or after this ISO-8601 date/time")] = None,
        to_date: Annotated[Optional[str], Field(description="before this ISO-8601 date/time")] = None,
        sources: Annotated[Optional[list[Source]], Field(description="only these sources")] = None,
        kinds: Annotated[Optional[list[Kind]], Field(description="only these kinds of interaction")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        cursor: Annotated[Optional[str], Field(description="next_cursor of the previous page")] = None,
    ) -> dict:
        return call(lambda: services.timeline(
            settings, entity_id, start=_time("from_date", from_date), end=_time("to_date", to_date),
            sources=sources or None, kinds=kinds or None, limit=limit, cursor=cursor))

    @server.tool(name="natural_language_query",
                 description="Answer a question about customers in plain language, e.g. 'what did Acme say about "
                             "pricing last month?'. Names, sources and time ranges in the question become filters; "
                             "the answer cites interactions (id, source, time, link).")
    def natural_language_query(
        question: Annotated[str, Field(min_length=1, max_length=nlquery.MAX_QUESTION_CHARS)],
        limit: Annotated[int, Field(ge=1, le=nlquery.MAX_LIMIT, description="how many passages to cite")] = 10,
    ) -> dict:
        return call(lambda: nlquery.answer(settings, question, limit))

    return server


def serve(settings: Settings, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765) -> None:
    server = build_server(settings)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
