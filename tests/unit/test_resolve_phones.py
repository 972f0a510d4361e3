"""Phones in entity resolution keep their country: E.164 through libphonenumber with a default region,
the everyday North American forms read by a fast path that must give the parser's result, and a
London and a US number with the same ten digits never count as one phone."""
from __future__ import annotations

import random
import re

import phonenumbers
import pytest
from hypothesis import given, settings, strategies as st

from ingest_worker import generate_people
from resolve_worker import normalise as nz
from resolve_worker import scoring
from resolve_worker.matching import IdentityRow, resolve
from resolve_worker.records import CompanyContext, company_records, person_records

pytestmark = pytest.mark.unit

LONDON = "+44 20 7946 0958"
MAINE = "(207) 946-0958"  # the same last ten digits: both were "2079460958" when phones kept only those
E164 = re.compile(r"\+[1-9]\d{3,14}")  # short ones exist: Niue's numbers have four digits
NANP_REGIONS = sorted(phonenumbers.region_codes_for_country_code(1))


def reference(text: str, region: str):  # noqa: ANN201
    """What libphonenumber itself says, written out here so the test does not trust nz.parse_phone."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# ----------------------------------------------------------------------------- the normaliser
def test_a_london_and_a_us_number_with_the_same_ten_digits_differ():
    assert nz.normalise_phone(LONDON) == "+442079460958"
    assert nz.normalise_phone(MAINE) == "+12079460958"


@pytest.mark.parametrize("region, forms, expected", [
    ("GB", ["020 7946 0958", "+44 20 7946 0958", "+44 (0)20 7946 0958", "0044 20 7946 0958", "+442079460958"],
     "+442079460958"),
    ("US", ["(312) 364-8942", "312.364.8942", "+1.312.364.8942", "+1 312-364-8942", "1-312-364-8942", "3123648942",
            "+1 (312) 364-8942", "011 1 312 364 8942"], "+13123648942"),
    ("DE", ["030 1234567", "+49 30 1234567", "0049 30 1234567"], "+49301234567"),
])
def test_national_and_international_forms_of_one_number_agree(region, forms, expected):
    assert {form: nz.normalise_phone(form, region) for form in forms} == dict.fromkeys(forms, expected)


def test_the_region_reads_numbers_written_without_a_country_code():
    assert nz.normalise_phone("207 946 0958", "GB") == "+442079460958"
    assert nz.normalise_phone("207 946 0958", "US") == "+12079460958"
    assert nz.normalise_phone("207 946 0958") == "+12079460958"  # US when no region is named
    assert nz.normalise_phone(LONDON, "US") == nz.normalise_phone(LONDON, "GB")  # a country code wins
    assert nz.normalise_phone("+1 415 555 0101", "GB") == "+14155550101"
    assert nz.normalise_phone("1-415-555-0101", "GB") is None  # not a British number


@pytest.mark.parametrize("raw, region, expected", [
    ("415-555-0101 ext. 12", "US", "+14155550101"), ("415-555-0101 x12", "US", "+14155550101"),
    ("(415) 555-0101 Extension 7", "US", "+14155550101"), ("+1 415 555 0101;ext=12", "US", "+14155550101"),
    ("+44 20 7946 0958 ext. 123", "US", "+442079460958"), ("020 7946 0958 x 4", "GB", "+442079460958"),
])
def test_extensions_are_dropped(raw, region, expected):
    assert nz.normalise_phone(raw, region) == expected


@pytest.mark.parametrize("raw, region", [
    (None, "US"), (4155550101, "US"), (["+1 415 555 0101"], "US"), (b"4155550101", "US"), ("", "US"), ("N/A", "US"),
    ("12", "US"), ("call me", "US"), ("☎☎☎", "US"),
    pytest.param("x" * 100_000, "US", id="100k-x"), pytest.param("4" * 100_000, "US", id="100k-digits"),
    ("946-0958", "US"),  # local: the same seven digits are another line in every area code
    ("4155550101", "XX"), ("4155550101", None), ("+1 415 555 01019999999999", "US"),
])
def test_junk_and_numbers_that_are_not_possible_give_none(raw, region):
    assert nz.normalise_phone(raw, region) is None


def test_invisible_characters_and_other_digits_are_read():
    assert nz.normalise_phone("\u200b+1 415\u00a0555 0101\ufeff") == "+14155550101"
    assert nz.normalise_phone("４１５５５５０１０１") == "+14155550101"  # full-width digits


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.text(), st.text(alphabet="0123456789+()-. xext#;=٣４", max_size=40), st.binary(),
                     st.integers(), st.none()),
       region=st.sampled_from(["US", "GB", "DE", "IN", "JM", "XX", ""]))
def test_the_normaliser_is_total_and_gives_e164_or_none(raw, region):
    out = nz.normalise_phone(raw, region)
    assert out is None or E164.fullmatch(out)


# ----------------------------------------------------------------------------- the fast path
_SEP = st.sampled_from(["", " ", "-", "."])


@st.composite
def nanp_forms(draw):  # noqa: ANN001, ANN201
    """A ten-digit number in the forms people write it, some with a +1, 1 or 0 before it; area
    codes and exchanges of any digits (the fast path must leave the odd ones to the parser)."""
    area, exchange, line = (draw(st.text("0123456789", min_size=n, max_size=n)) for n in (3, 3, 4))
    if draw(st.integers(0, 9)) == 0:  # now and then another script's digit, which the parser reads
        line = line[:3] + draw(st.sampled_from("٣４"))
    prefix = draw(st.sampled_from(["", "", "+1", "1", "+", "0", "01", "+11", "011 1"]))
    area = f"({area})" if draw(st.booleans()) else area
    text = f"{prefix}{draw(_SEP) if prefix else ''}{area}{draw(_SEP)}{exchange}{draw(_SEP)}{line}"
    return text + draw(st.sampled_from(["", "", " x12", " ext. 9"]))


@settings(max_examples=800, deadline=None)
@given(text=nanp_forms(), region=st.sampled_from(NANP_REGIONS + ["GB", "DE", "FR", "IN", "AU", "MX"]))
def test_the_fast_path_gives_what_libphonenumber_gives(text, region):
    expected = reference(text, region)
    if expected and nz.is_placeholder_phone(expected):
        expected = None
    assert nz.normalise_phone(text, region) == expected


@pytest.mark.parametrize("raw", ["000-000-0000", "(999) 999-9999", "555-555-5555", "+1 415 000 0000",
                                 "123-456-7890", "+1 (123) 456-7890 x1", "1111111111", "+44 20 0000 0000",
                                 "+44 9876543210"])
def test_placeholder_numbers_are_no_phone(raw):
    assert nz.normalise_phone(raw) is None


def test_placeholder_numbers_join_nobody():
    # two strangers who each typed 000-000-0000 in a form: as phone evidence (+6.5) with a bare
    # first name they joined
    rows = [IdentityRow("hubspot", "contacts", "1", "person", name="Sam", phone="000-000-0000"),
            IdentityRow("salesforce", "Contact", "2", "person", name="Sam", phone="(000) 000-0000")]
    assert len({m.entity_id for m in resolve(rows)}) == 2
    assert nz.normalise_phone("+1 415 555 0101") == "+14155550101"  # fictional 555-01xx numbers are fine


def test_the_generators_phones_take_the_fast_path(monkeypatch):
    # the resolver is timed beside Splink at 100k identities: the parser's 30 µs a number would
    # cost ~0.8 s on the 26.5k distinct phones there
    rng = random.Random(7)
    forms = [generate_people.phone(rng) for _ in range(400)] + ["312.364.8942", "+1 (312) 364-8942",
                                                               "1-312-364-8942", "312-364-8942 x55"]
    expected = {form: reference(form, "US") for form in forms}
    monkeypatch.setattr(nz, "parse_phone", lambda text, region: pytest.fail(f"{text!r} took the parser"))
    nz._e164.cache_clear()
    assert {form: nz.normalise_phone(form, "US") for form in forms} == expected


# ----------------------------------------------------------------------------- as evidence
def person(sid, name, phone, company=None):  # noqa: ANN001, ANN201
    return IdentityRow("hubspot", "contacts", sid, "person", name=name, phone=phone, company_name=company)


def test_two_people_with_a_london_and_a_us_number_get_no_phone_evidence():
    rows = [person("1", "Chris Jones", LONDON), person("2", "Chris Jones", MAINE)]
    a, b = person_records(rows, CompanyContext([], []))
    score, why = scoring.score_persons(a, b)
    assert not any(w.startswith("phone=") for w in why)
    assert scoring.confidence(score) < scoring.THRESHOLD
    m = resolve(rows)
    assert m[0].entity_id != m[1].entity_id and {x.method for x in m} == {"singleton"}


def test_two_companies_with_a_london_and_a_us_number_get_no_phone_evidence():
    rows = [IdentityRow("hubspot", "companies", str(i), "company", name="Acme", phone=p)
            for i, p in enumerate((LONDON, MAINE))]
    a, b = company_records(rows)
    assert not any(w.startswith("phone=") for w in scoring.score_companies(a, b)[1])


def test_the_region_given_to_resolve_reads_national_numbers():
    rows = [person("1", "Chris Jones", "020 7946 0958"), person("2", "Chris Jones", LONDON)]
    in_gb = resolve(rows, phone_region="GB")
    assert in_gb[0].entity_id == in_gb[1].entity_id and "phone=+442079460958" in in_gb[0].evidence["matched_on"]
    in_us = resolve(rows)  # "020 7946 0958" is no US number: a bare name is not enough
    assert in_us[0].entity_id != in_us[1].entity_id
