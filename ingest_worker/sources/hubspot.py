"""HubSpot: owners, contacts, companies and the four engagement streams.

CRM-search records carry their properties twice, nested in ``properties`` and flattened into
``properties_<name>`` columns; depending on the destination/landing one or both survive, so
every property read goes through :class:`Props`.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from ingest_worker.model import (CALL, COMPANY, EMAIL, MEETING, NOTE, PERSON, Identity,
                                 IdentityKey, Interaction, Outcome, Participant)
from ingest_worker.sources.text import (directory_name, domain_of, html_to_text, join_name,
                                        leftover, normalize_email, number, required_time,
                                        require_id, run, safe_str)

SOURCE = "hubspot"
STREAMS = ("owners", "companies", "contacts", "engagements_notes", "engagements_calls",
           "engagements_emails", "engagements_meetings")

_PREFIX = "properties_"


class Props:
    """Reads a property from either shape, remembering which were used for the leftovers."""

    def __init__(self, record: dict) -> None:
        nested = record.get("properties")
        self.nested = nested if isinstance(nested, dict) else {}
        self.flat = {k[len(_PREFIX):]: v for k, v in record.items() if k.startswith(_PREFIX)}
        self.used: set[str] = set()

    def get(self, name: str) -> Any:
        self.used.add(name)
        value = self.nested.get(name)
        return value if value is not None else self.flat.get(name)

    def text(self, name: str) -> Optional[str]:
        return safe_str(self.get(name))

    def rest(self) -> dict[str, Any]:
        merged = {**self.flat, **{k: v for k, v in self.nested.items() if v is not None}}
        return {k: v for k, v in merged.items()
                if k not in self.used and v is not None}


def _extras(rec: dict, props: Props, consumed: set[str]) -> dict[str, Any]:
    """Unused top-level fields plus unused properties, the latter under one 'properties' key."""
    out = leftover({k: v for k, v in rec.items() if not k.startswith(_PREFIX)},
                   consumed | {"properties"})
    rest = props.rest()
    if rest:
        out["properties"] = rest
    return out


def _ids(value: Any) -> list[str]:
    """Association arrays hold ids as strings or numbers; keep order, drop blanks/duplicates."""
    if not isinstance(value, list):
        value = [value] if value is not None else []
    return list(dict.fromkeys(s for s in (safe_str(v) for v in value) if s))


def key(stream: str, record_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, stream, record_id)


def _owners(rec: dict, ctx: Any, out: Outcome) -> None:
    oid = require_id(rec, "id")
    email = normalize_email(rec.get("email"))
    out.identities.append(Identity(
        key=key("owners", oid), entity_type=PERSON,
        name=join_name(rec.get("firstName"), rec.get("lastName")),
        emails=[email] if email else [], is_internal=True,
        attributes=leftover(rec, {"id", "email", "firstName", "lastName"}),
    ))


def _contacts(rec: dict, ctx: Any, out: Outcome) -> None:
    cid = require_id(rec, "id")
    props = Props(rec)
    emails = []
    for name in ("email", "hs_additional_emails", "work_email"):
        for raw in (props.text(name) or "").replace(";", ",").split(","):
            email = normalize_email(raw)
            if email and email not in emails:
                emails.append(email)
    company_ids = _ids(props.get("associatedcompanyid")) + _ids(rec.get("companies"))
    company_ids = list(dict.fromkeys(company_ids))
    attributes = _extras(rec, props, {"id"})
    if company_ids:
        attributes["company_ids"] = company_ids
    out.identities.append(Identity(
        key=key("contacts", cid), entity_type=PERSON,
        name=join_name(props.get("firstname"), props.get("lastname")),
        emails=emails, phone=props.text("phone") or props.text("mobilephone"),
        title=props.text("jobtitle"), company_name=props.text("company"),
        company_key=key("companies", company_ids[0]) if company_ids else None,
        attributes=attributes,
    ))


def _companies(rec: dict, ctx: Any, out: Outcome) -> None:
    cid = require_id(rec, "id")
    props = Props(rec)
    domains = [d for d in (domain_of(props.get("domain")), domain_of(props.get("website"))) if d]
    out.identities.append(Identity(
        key=key("companies", cid), entity_type=COMPANY, name=props.text("name"),
        domains=list(dict.fromkeys(domains)), phone=props.text("phone"),
        attributes=_extras(rec, props, {"id"}),
    ))


# stream -> (kind, body properties in preference order, title property)
_ENGAGEMENTS = {
    "engagements_notes": (NOTE, ("hs_note_body",), None),
    "engagements_calls": (CALL, ("hs_call_body",), "hs_call_title"),
    "engagements_emails": (EMAIL, ("hs_email_text", "hs_email_html"), "hs_email_subject"),
    "engagements_meetings": (MEETING, ("hs_meeting_body",), "hs_meeting_title"),
}
_DIRECTIONS = {"INBOUND": "inbound", "OUTBOUND": "outbound", "INCOMING_EMAIL": "inbound",
               "EMAIL": "outbound", "FORWARDED_EMAIL": "outbound"}


def _engagement(stream: str):
    kind, body_props, title_prop = _ENGAGEMENTS[stream]

    def handle(rec: dict, ctx: Any, out: Outcome) -> None:
        eid = require_id(rec, "id")
        props = Props(rec)
        occurred = required_time(props.get("hs_timestamp"), "hs_timestamp")
        if occurred is None:
            occurred = required_time(rec.get("createdAt") or props.get("hs_createdate"),
                                     "createdAt")
        body = None
        for name in body_props:
            body = body or html_to_text(props.get(name))
        title = props.text(title_prop) if title_prop else None

        duration = None
        if kind == CALL:
            ms = number(props.get("hs_call_duration"))
            duration = ms / 1000 if ms is not None else None
        elif kind == MEETING:
            start = required_time(props.get("hs_meeting_start_time"), "hs_meeting_start_time")
            end = required_time(props.get("hs_meeting_end_time"), "hs_meeting_end_time")
            if start and end and end >= start:
                duration = (end - start).total_seconds()
        raw_direction = props.text("hs_call_direction" if kind == CALL else "hs_email_direction")

        participants = []
        owner_id = props.text("hubspot_owner_id")
        if owner_id:
            owner = key("owners", owner_id)
            participants.append(Participant(role="owner", identity=owner,
                                            name=directory_name(ctx, owner)))
        for contact_id in _ids(rec.get("contacts")):
            contact = key("contacts", contact_id)
            participants.append(Participant(role="contact", identity=contact,
                                            name=directory_name(ctx, contact)))
        if kind == EMAIL:
            sender = normalize_email(props.get("hs_email_from_email"))
            if sender:
                participants.append(Participant(role="attendee", email=sender, name=join_name(
                    props.get("hs_email_from_firstname"), props.get("hs_email_from_lastname"))))
            for raw in (props.text("hs_email_to_email") or "").replace(";", ",").split(","):
                if normalize_email(raw):
                    participants.append(Participant(role="attendee", email=normalize_email(raw)))

        metadata: dict[str, Any] = {}
        if raw_direction:
            metadata["direction_raw"] = raw_direction
        if rec.get("archived") is True:
            metadata["deleted"] = True
        extra = _extras(rec, props, {"id", "contacts", "companies"})
        if extra:
            metadata["extra"] = extra
        out.interactions.append(Interaction(
            key=key(stream, eid), kind=kind, occurred_at=occurred, title=title, body=body,
            duration_s=duration, direction=_DIRECTIONS.get((raw_direction or "").upper()),
            url=props.text("hs_meeting_external_url") if kind == MEETING else None,
            participants=participants,
            companies=[key("companies", c) for c in _ids(rec.get("companies"))],
            metadata=metadata,
        ))

    return handle


_HANDLERS = {"owners": _owners, "contacts": _contacts, "companies": _companies,
             **{stream: _engagement(stream) for stream in _ENGAGEMENTS}}


def process(stream: str, records: Iterable[dict], ctx: Any) -> Outcome:
    return run(stream, records, _HANDLERS.get(stream), ctx)
