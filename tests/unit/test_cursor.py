"""api/services.py: keyset cursors and UUID parameters, no database needed."""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from api import services
from api.services import BadRequest, decode_cursor, encode_cursor, parse_uuid


@pytest.mark.parametrize("at", [
    dt.datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 3, 1, 12, 30, 45, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(2024, 3, 1, 12, 30, 45),
    None,
])
def test_cursor_round_trip(at):
    cursor = encode_cursor(at, 4242)
    got_at, got_id = decode_cursor(cursor)
    assert got_id == 4242
    assert got_at == at
    if at is not None:
        assert got_at.utcoffset() == at.utcoffset()  # timezone kept, naive stays naive


def test_cursor_is_url_safe_and_unpadded():
    cursor = encode_cursor(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), 2**40)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def test_distinct_positions_give_distinct_cursors():
    at = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert encode_cursor(at, 1) != encode_cursor(at, 2)
    assert encode_cursor(at, 1) != encode_cursor(at + dt.timedelta(microseconds=1), 1)


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage!!",
    "",
    "bm90IGpzb24",  # "not json"
    _b64({"a": 1}),
    _b64([None]),
    _b64([None, 1, 2]),
    _b64(["yesterday", 1]),
    _b64([None, "abc"]),
    _b64([None, None]),
    _b64(5),
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
])
def test_garbage_cursor_is_bad_request(cursor):
    with pytest.raises(BadRequest):
        decode_cursor(cursor)


def test_bad_request_is_a_value_error():
    assert issubclass(services.BadRequest, ValueError)


def test_parse_uuid_canonicalises():
    u = uuid.uuid4()
    assert parse_uuid(str(u)) == str(u)
    assert parse_uuid(str(u).upper()) == str(u)
    assert parse_uuid(u.hex) == str(u)


@pytest.mark.parametrize("value", ["", "abc", "12345678-1234-1234-1234-12345678901", "not-a-uuid-at-all-xx",
                                   None, 42])
def test_parse_uuid_rejects_non_uuids(value):
    with pytest.raises(BadRequest, match="entity_id must be a UUID"):
        parse_uuid(value)


def test_parse_uuid_names_the_parameter():
    with pytest.raises(BadRequest, match="run_id"):
        parse_uuid("nope", name="run_id")
