"""What the writer stores: the fast paths (PII pre-check, one-walk JSON cleaning, orjson parsing)
give exactly what the slow general paths give."""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from common import pii
from ingest_worker import landing, upserts
from ingest_worker.sources.text import leftover

SAMPLES = [
    "", "no digits at all", "call 555-123-4567", "card 4111 1111 1111 1111 ok", "4111-1111-1111-1111",
    "amex 3782 822463 10005", "bare 4111111111111111.", "ssn 123-45-6789!", "ssn-like 000-12-3456",
    "dates 2024-01-15 2024-01-16", "ts 1700000000.000100", "order 12345678", "iban DE89 3704 0044 0532 0130 00",
    "4111 1111 1111 1111 12 pcs", "a\x00b 4111111111111111",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_sensitive_precheck_changes_nothing(text):
    assert pii.mask_sensitive(text) == pii.mask(text, pii.SENSITIVE)


def test_sensitive_precheck_on_random_digit_strings():
    rng = random.Random(7)
    alphabet = "0123456789 -./ab"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        assert pii.mask_sensitive(text) == pii.mask(text, pii.SENSITIVE), text


def _slow_clean(value):
    return pii.mask_obj(json.loads(json.dumps(value, default=str).replace("\\u0000", "")))


@pytest.mark.parametrize("value", [
    {"a": "x\x00y", "card": "4111 1111 1111 1111", "n": [1, 2.5, True, None, {"ssn": "123-45-6789"}]},
    {"k\x00ey": ("t", "u"), "empty": {}, "nested": [[["4111111111111111"]]]},
    {"when": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc), 5: "int key"},
])
def test_clean_json_equals_the_json_round_trip(value):
    assert upserts.clean_json(value) == _slow_clean(value)


def _random_value(rng: random.Random, depth: int = 0):
    pick = rng.random()
    if depth < 3 and pick < 0.3:
        return {rng.choice(["a", "b", "id", "k\x00", "note"]) + str(i): _random_value(rng, depth + 1)
                for i in range(rng.randint(0, 4))}
    if depth < 3 and pick < 0.45:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if pick < 0.55:
        return rng.choice([None, True, 7, 2.5, 1790000000000, 4111111111111111])
    text = "".join(rng.choice("0123456789 -./aé\n\"\x00") for _ in range(rng.randint(0, 30)))
    return rng.choice(["", "card 4111 1111 1111 1111 ", "ssn 123-45-6789 ", "x"]) + text


def test_clean_json_fast_path_equals_the_json_round_trip_on_random_values():
    """The serialise-and-scan shortcut returns the value itself only when the walk would change
    nothing; everything it lets through is what the slow path stores."""
    rng = random.Random(11)
    for _ in range(3000):
        value = {"m": _random_value(rng)}
        assert upserts.clean_json(value) == _slow_clean(value), value


def test_serialised_hint_never_misses_what_the_text_hint_finds():
    rng = random.Random(5)
    for _ in range(20000):
        text = "".join(rng.choice("0123456789 -x") for _ in range(rng.randint(1, 24)))
        if pii._SENSITIVE_HINT.search(text):
            assert pii.may_hold_sensitive(json.dumps({"v": [text]}).encode()), text


def test_clean_json_returns_a_value_needing_no_change_as_is():
    value = {"ids": [1790000000, "U123"], "note": "call 555-123-4567", "when": "2026-01-02"}
    assert upserts.clean_json(value) is value
    assert upserts.clean_json({"n": "4111 1111 1111 1111"}) == {"n": "[CARD]"}


def test_clean_text_drops_nul_and_masks():
    assert upserts.clean_text("a\x00b 123-45-6789") == "ab [SSN]"
    assert upserts.clean_text(None) is None


def test_leftover_keeps_unused_fields_and_leaves_the_record_alone():
    record = {"a": [{"b": {"c": [1, "x", None]}}], "d": 1.5, "e": None, "f": True}
    rest = leftover(record, {"d"})
    assert rest == {"a": [{"b": {"c": [1, "x", None]}}], "f": True}
    rest["g"] = 1
    assert "g" not in record and record["d"] == 1.5


def test_stored_metadata_never_reaches_back_into_the_record():
    """Metadata shares nested values with its record (no deep copy); the writer's cleaning builds a
    new value when it masks, so the record keeps its text."""
    record = {"n": {"card": "4111 1111 1111 1111"}}
    assert upserts.clean_json(leftover(record, ())) == {"n": {"card": "[CARD]"}}
    assert record == {"n": {"card": "4111 1111 1111 1111"}}


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"big": 123456789012345678901234567890}', '{"a": [1, "é"]}',
                                  '{"neg": -9223372036854775809}', '{"u64": 18446744073709551615}',
                                  '[1, 123456789012345678901]', '{"a":[{"b":\t-12345678901234567890}]}'])
def test_landing_parser_accepts_what_json_accepts(text):
    assert repr(landing.loads(text)) == repr(json.loads(text))


def test_landing_parser_rejects_what_json_rejects():
    with pytest.raises(json.JSONDecodeError):
        landing.loads("{not json")


def test_payload_falls_back_for_integers_past_64_bits():
    assert json.loads(upserts.payload([{"n": 2**70}])) == [{"n": 2**70}]


def test_chunk_token_counts_equal_the_estimate_of_their_text():
    from common import chunking

    rng = random.Random(11)
    words = ["alpha", "beta,", "gamma.", "Delta!", "e-mail", "x" * 300, "4,000/month?", "naïve", "—", "\n\n"]
    for n in range(60):
        turns = [{"text": " ".join(rng.choice(words) for _ in range(rng.randint(1, 120))),
                  "start_ms": i * 1000, "end_ms": i * 1000 + 500, "speaker_name": rng.choice(["Ada", None])}
                 for i in range(rng.randint(0, 12))]
        body = "\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(1, 300))) for _ in range(3))
        for draft in chunking.chunk_interaction(f"k:{n}", rng.choice(["call", "note"]), "A title", body, turns):
            assert draft.token_count == chunking.estimate_tokens(draft.text)


def test_sensitive_precheck_on_random_grouped_numbers():
    """Digit groups of card, SSN, phone and date lengths with mixed separators: the narrower
    pre-check (13-digit run, 4-4-4 / 4-6-4 groups, SSN shape) never skips a maskable value."""
    rng = random.Random(11)
    for _ in range(20000):
        groups = [str(rng.randrange(10 ** n)).zfill(n) for n in
                  (rng.choice((2, 3, 4, 5, 6, 8, 13, 15, 16, 19)) for _ in range(rng.randint(1, 5)))]
        text = "".join(g + rng.choice(("", " ", "-", "-", " ", ".", "x")) for g in groups)
        assert pii.mask_sensitive(text) == pii.mask(text, pii.SENSITIVE), text


def test_sensitive_precheck_passes_valid_cards_in_every_layout():
    for text in ("4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
                 "3782 822463 10005", "3782-822463-10005", "4111 1111 1111 1111 111", "123-45-6789"):
        assert pii._SENSITIVE_HINT.search(text), text
        assert pii.mask_sensitive(f"x {text} y") != f"x {text} y", text


def test_merge_interactions_copies_only_repeated_keys_and_never_mutates_inputs():
    from ingest_worker import model, store

    key = model.IdentityKey("slack", "threads", "C1:1")
    first = model.Interaction(key=key, kind="thread", title="t", turns=[model.Turn("1", "a")],
                              metadata={"extra": {"1": {}}}, partial=True)
    second = model.Interaction(key=key, kind="thread", body="b", turns=[model.Turn("2", "b")],
                               metadata={"bot": [2]}, partial=True)
    lone = model.Interaction(key=model.IdentityKey("slack", "threads", "C1:2"), kind="thread")
    merged = store._merge_interactions([first, lone, second])
    assert merged[1] is lone  # a key seen once passes through
    assert [t.turn_key for t in merged[0].turns] == ["1", "2"]
    assert (merged[0].title, merged[0].body) == ("t", "b")
    assert merged[0].metadata == {"extra": {"1": {}}, "bot": [2]}
    assert [t.turn_key for t in first.turns] == ["1"] and first.metadata == {"extra": {"1": {}}}
    assert first.body is None and [t.turn_key for t in second.turns] == ["2"]


def test_big_integer_scan_flags_every_line_the_value_regex_flags():
    """The digit-run scan (``landing._may_hold_big_int``) is a superset of the exact rule it
    replaced: a JSON value of 20+ digits, or a minus and 19+, after a separator."""
    import random
    import re

    exact = re.compile(r"[:,\[][ \t\r\n]*(?:-[0-9]{19}|[0-9]{20})")
    rng = random.Random(7)
    alphabet = '0123456789-:,[ "ab\té'
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) if rng.random() < 0.3 else rng.choice("0123456789")
                       for _ in range(rng.randint(1, 60)))
        if exact.search(text):
            assert landing._may_hold_big_int(text), text
    assert not landing._may_hold_big_int('{"id": "7782342274025937895", "n": 9223372036854775807}')
    assert landing._may_hold_big_int('{"n": -9223372036854775809}')


def test_stored_metadata_keeps_source_ids_that_happen_to_pass_luhn():
    gong_id = "7782342021547800002"  # passes Luhn, like one Gong id in ten
    value = {"id": gong_id, "workspaceId": gong_id, "context": [{"objectId": gong_id, "text": f"card {gong_id}"}]}
    assert upserts.clean_json(value) == {"id": gong_id, "workspaceId": gong_id,
                                         "context": [{"objectId": gong_id, "text": "card [CARD]"}]}


def test_a_link_is_masked_but_for_the_records_own_id():
    gong_id = "7782342021547800002"
    assert upserts.clean_url(f"https://app.gong.io/call?id={gong_id}", gong_id) == \
        f"https://app.gong.io/call?id={gong_id}"
    assert upserts.clean_url("https://x.io/pay?card=4111111111111111\x00", gong_id) == "https://x.io/pay?card=[CARD]"
    assert upserts.clean_url(None, gong_id) is None
