"""Text that Postgres cannot store (NUL) or UTF-8 cannot encode (an unpaired surrogate, which a
JSON ``\\ud800`` escape makes): refused at the API's edge and by the service functions the MCP
tools share, and made storable in audit rows (whose one bad row once blocked every later flush)."""
from __future__ import annotations

import pytest

from api import nlquery, services
from common import audit


@pytest.mark.parametrize("text, ok", [("plain", True), ("café ☕", True), ("a\x00b", False), ("\ud800x", False),
                                      ("", True), ("😀", True)])
def test_is_text(text, ok):
    assert services.is_text(text) is ok


@pytest.mark.parametrize("question", ["what did ac\x00me say", "\udc80 pricing"])
def test_the_query_and_search_services_refuse_text_they_cannot_store_or_encode(question):
    with pytest.raises(services.BadRequest, match="NUL character or an unpaired surrogate"):
        nlquery.answer(None, question)  # refused before any database or cache is touched
    with pytest.raises(services.BadRequest, match="NUL character or an unpaired surrogate"):
        services.search(None, question)


def test_audit_rows_carry_storable_text_only():
    row = audit.row("key:x\x00", "GET /api/v1/sync/runs/<run_id>", "run_id=\x00\ud800", "404",
                    {"request": {"sources": ["gong\x00"], "k\x00": "\udc80"}, "ms": 1.5})
    assert row["actor"] == "key:x\ufffd" and row["target"] == "run_id=\ufffd?"
    assert row["detail"] == {"request": {"sources": ["gong\ufffd"], "k\ufffd": "?"}, "ms": 1.5}
    plain = {"ms": 2.0}
    assert audit.row("a", "b", None, "200", plain)["detail"] == plain


def test_times_are_read_in_utc_so_postgres_takes_any_offset_python_does():
    """``?to=0010-02-04T15:47:47-19:31`` (schemathesis) was a 500: Postgres refuses offsets past ±15:59."""
    from api import params

    assert params.parse_time("to", "0010-02-04T15:47:47-19:31").isoformat() == "0010-02-05T11:18:47+00:00"
    assert params.parse_time("to", "2026-03-01").isoformat() == "2026-03-01T00:00:00+00:00"
    assert params.parse_time("to", " ") is None
    with pytest.raises(services.BadRequest, match="out of range"):
        params.parse_time("from", "0001-01-01T00:00:00+01:00")
