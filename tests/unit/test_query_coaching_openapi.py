"""The OpenAPI path items the query and coaching blueprints hand to the API's document match the
routes the app really serves (the integrator merges them into /api/v1/openapi.json)."""
from __future__ import annotations

import pytest

from api import coaching_routes, query_routes
from common.settings import Settings


@pytest.fixture(scope="module")
def app():
    from api import create_app

    return create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none", redis_url="redis://127.0.0.1:1/0"))


@pytest.mark.parametrize("module", [query_routes, coaching_routes])
def test_every_documented_operation_is_served(app, module):
    served = {(r.rule, m.lower()) for r in app.url_map.iter_rules() for m in r.methods}
    for path, item in module.OPENAPI_PATHS.items():
        for method, operation in item.items():
            assert (path, method) in served
            assert operation["responses"]["200"] and operation["responses"]["400"]
            assert operation["security"] == [{"apiKey": []}]


def test_the_mcp_server_offers_the_four_tools():
    import anyio

    from api.mcp_server import TOOL_NAMES, build_server

    async def names():
        return {t.name: t for t in await build_server(Settings()).list_tools()}

    tools = anyio.run(names)
    assert set(tools) == set(TOOL_NAMES)
    assert all(t.description and t.input_schema["type"] == "object" for t in tools.values())
