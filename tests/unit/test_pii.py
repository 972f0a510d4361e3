import time

import pytest

from common import pii

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail jane.doe+crm@pay-ready.co.uk now", "mail [EMAIL] now"),
        ("call +1 (415) 555-0132 today", "call [PHONE] today"),
        ("call 415-555-0132", "call [PHONE]"),
        ("ring (415) 555.0132", "ring [PHONE]"),
        ("uk +44 20 7946 0958.", "uk [PHONE]."),
        ("mobile +4915112345678", "mobile [PHONE]"),
        ("office 020 7946 0958", "office [PHONE]"),
        ("card 4111 1111 1111 1111 exp", "card [CARD] exp"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("card 4111111111111111", "card [CARD]"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("iban DE89 3704 0044 0532 0130 00 EUR", "iban [IBAN] EUR"),
        ("iban GB82WEST12345698765432", "iban [IBAN]"),
        ("ssn 123-45-6789.", "ssn [SSN]."),
    ],
)
def test_mask_detects(text, expected):
    assert pii.mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456 shipped",  # not Luhn-valid: an id, not a card
        "ref 1234567890123456",
        "iban DE00 3704 0044 0532 0130 00",  # bad check digits
        "ssn 000-12-3456 666-12-3456 912-34-5678 123-00-4567",  # never issued
        "met on 2024-01-15 and 2024-01-16 at 10:30",
        "server 192.168.100.20 v1.2.3",
        "we grew 15% to 1,250,000 in Q3",
    ],
)
def test_leaves_lookalikes(text):
    assert pii.mask(text) == text
    assert pii.find(text) == []


def test_find_spans_and_kinds():
    text = "x a@b.io y 4111 1111 1111 1111"
    found = pii.find(text)
    assert [k for k, *_ in found] == [pii.EMAIL, pii.CARD]
    for kind, start, end in found:
        assert text[start:end] in ("a@b.io", "4111 1111 1111 1111")


def test_iban_wins_over_card_and_phone():
    assert pii.find("NL91ABNA0417164300") == [(pii.IBAN, 0, 18)]


def test_card_with_swallowed_trailing_group():
    assert pii.mask("4111 1111 1111 1111 12 pcs") == "[CARD] 12 pcs"


def test_mask_sensitive_only_cards_and_ssn():
    text = "jane@x.com 415-555-0132 4111111111111111 123-45-6789"
    assert pii.mask_sensitive(text) == "jane@x.com 415-555-0132 [CARD] [SSN]"


def test_mask_kinds_subset_and_unknown():
    assert pii.mask("a@b.io 415-555-0132", kinds={pii.PHONE}) == "a@b.io [PHONE]"
    with pytest.raises(ValueError):
        pii.mask("x", kinds={"passport"})


def test_mask_obj_recursive():
    record = {
        "id": 7,
        "card 4111111111111111": "key kept",
        "body": "pay with 4111 1111 1111 1111",
        "nested": [{"ssn": "123-45-6789"}, ("t", "5555555555554444"), None, 3.5],
        "email": "a@b.io",
    }
    masked = pii.mask_obj(record)
    assert masked == {
        "id": 7,
        "card 4111111111111111": "key kept",
        "body": "pay with [CARD]",
        "nested": [{"ssn": "[SSN]"}, ("t", "[CARD]"), None, 3.5],
        "email": "a@b.io",
    }
    assert record["body"] == "pay with 4111 1111 1111 1111"  # input untouched


def test_empty_and_none_like():
    assert pii.mask("") == ""
    assert pii.find("") == []
    assert pii.mask_obj(None) is None


def test_luhn_and_iban_helpers():
    assert pii.luhn_ok("79927398713")
    assert not pii.luhn_ok("79927398710")
    assert pii.iban_ok("FR14 2004 1010 0505 0001 3M02 606")
    assert not pii.iban_ok("FR15 2004 1010 0505 0001 3M02 606")


def test_fast_on_10k_strings():
    texts = [
        f"Note {i}: followed up with the buyer about invoice {i * 37} on 2024-03-{i % 28 + 1:02d}; "
        f"they asked for a demo next week and pricing for {i % 50} seats." for i in range(10_000)
    ]
    texts[::500] = ["reach me at jo@x.com or +1 415 555 0132, card 4111111111111111"] * 20
    started = time.perf_counter()
    out = [pii.mask(t) for t in texts]
    elapsed = time.perf_counter() - started
    assert out[0] == "reach me at [EMAIL] or [PHONE], card [CARD]"
    assert elapsed < 2.0, elapsed


# a Gong-style 19-digit id that passes the Luhn check, as about one in ten of them does
GONG_ID = "7782342021547800002"


@pytest.mark.parametrize("field,value,expected", [
    ("id", GONG_ID, True), ("Id", GONG_ID, True), ("callId", GONG_ID, True), ("speaker_id", GONG_ID, True),
    ("WhoID", GONG_ID, True), ("primaryUserIds", [GONG_ID, "234599484848423"], True),
    ("paid", GONG_ID, False), ("valid", GONG_ID, False), ("note", GONG_ID, False),
    ("id", "card 4111111111111111", False), ("callIds", [GONG_ID, "4111 1111 1111 1111"], False),
    ("id", 7, False), (7, GONG_ID, False),
])
def test_identifier_fields_are_recognised_by_name_and_bare_digits(field, value, expected):
    assert pii.luhn_ok(GONG_ID)
    assert pii.is_identifier(field, value) is expected


def test_mask_obj_keeps_the_sources_own_ids_but_masks_the_same_digits_in_text():
    record = {"id": GONG_ID, "parties": [{"speakerId": GONG_ID, "note": f"card {GONG_ID}"}],
              "userIds": [GONG_ID], "memo": GONG_ID}
    assert pii.mask_obj(record) == {"id": GONG_ID, "parties": [{"speakerId": GONG_ID, "note": "card [CARD]"}],
                                    "userIds": [GONG_ID], "memo": "[CARD]"}


def test_mask_sensitive_keeps_only_the_named_identifiers():
    url = f"https://app.gong.io/call?id={GONG_ID}&ref=4111111111111111"
    assert pii.mask_sensitive(url) == "https://app.gong.io/call?id=[CARD]&ref=[CARD]"
    assert pii.mask_sensitive(url, keep=(GONG_ID,)) == f"https://app.gong.io/call?id={GONG_ID}&ref=[CARD]"
