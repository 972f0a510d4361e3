"""The question parser: time ranges (fixed now), sources, kinds and entity names."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from api.query_parse import KnownEntity, fold, match_entities, parse, parse_time

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # a Friday
KNOWN = [KnownEntity("c1", "company", "Acme Corp"), KnownEntity("c2", "company", "Globex, Inc."),
         KnownEntity("c3", "company", "Adatum Corp"), KnownEntity("p1", "person", "Renée Johansson"),
         KnownEntity("p2", "person", "James Baker"), KnownEntity("c4", "company", "Co")]


def d(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("question,start,end", [
    ("what did Acme say about pricing last month?", d(2026, 10, 1), d(2026, 11, 1)),
    ("anything this month", d(2026, 11, 1), d(2026, 12, 1)),
    ("calls this week", d(2026, 11, 23), d(2026, 11, 30)),
    ("notes from last week", d(2026, 11, 16), d(2026, 11, 23)),
    ("what happened yesterday", d(2026, 11, 26), d(2026, 11, 27)),
    ("anything today?", d(2026, 11, 27), d(2026, 11, 28)),
    ("since March", d(2026, 3, 1), None),
    ("since December", d(2025, 12, 1), None),  # the latest December that has begun
    ("since march 2025", d(2025, 3, 1), None),
    ("before March 2026", None, d(2026, 3, 1)),
    ("after 2026-02-10", d(2026, 2, 11), None),
    ("in Q3 2026", d(2026, 7, 1), d(2026, 10, 1)),
    ("in q4", d(2026, 10, 1), d(2027, 1, 1)),  # the latest Q4 that has begun
    ("during the third quarter of 2025", d(2025, 7, 1), d(2025, 10, 1)),
    ("last quarter", d(2026, 7, 1), d(2026, 10, 1)),
    ("this year", d(2026, 1, 1), d(2027, 1, 1)),
    ("last year", d(2025, 1, 1), d(2026, 1, 1)),
    ("in 2025", d(2025, 1, 1), d(2026, 1, 1)),
    ("in March", d(2026, 3, 1), d(2026, 4, 1)),
    ("in December", d(2025, 12, 1), d(2026, 1, 1)),
    ("in Sept 2025", d(2025, 9, 1), d(2025, 10, 1)),
    ("on 2026-05-04", d(2026, 5, 4), d(2026, 5, 5)),
    ("between 2026-01-01 and 2026-01-31", d(2026, 1, 1), d(2026, 2, 1)),
    ("from 2026-01-01 to 2026-01-15", d(2026, 1, 1), d(2026, 1, 16)),
    ("in the last 7 days", d(2026, 11, 20), d(2026, 11, 28)),
    ("over the past two weeks", d(2026, 11, 13), d(2026, 11, 28)),
    ("the past month", d(2026, 10, 27), d(2026, 11, 28)),
    ("last 3 months", d(2026, 8, 27), d(2026, 11, 28)),
])
def test_time_ranges(question, start, end):
    got = parse_time(question, NOW)
    assert got[:2] == (start, end), got


def test_no_time_phrase_means_no_range():
    assert parse_time("what did Acme say about pricing?", NOW) == (None, None, None)
    assert parse_time("we have 2025 units", NOW) == (None, None, None)  # a bare number is not a year


@pytest.mark.parametrize("question,start,end", [
    # each was an OverflowError or ValueError, so a 500 from POST /api/v1/query
    ("what did Acme say in the last 999999999 days", None, d(2026, 11, 28)),  # since the beginning
    ("in the last 99999999999999999999 weeks", None, d(2026, 11, 28)),
    ("last 99999 years", None, d(2026, 11, 28)),
    ("before 9999-12-31", None, d(9999, 12, 31)),
    ("on 9999-12-31", d(9999, 12, 31), None),  # the calendar's last day: open-ended
    ("between 2026-01-01 and 9999-12-31", d(2026, 1, 1), None),
    ("in december 9999", d(9999, 12, 1), None),
    ("in Q4 9999", d(9999, 10, 1), None),
])
def test_ranges_at_the_calendars_ends_are_open_not_errors(question, start, end):
    assert parse_time(question, NOW)[:2] == (start, end)


@pytest.mark.parametrize("question", ["after 9999-12-31", "after december 9999", "in january 0000"])
def test_a_time_past_the_calendar_is_no_filter(question):
    assert parse_time(question, NOW) == (None, None, None)


def test_the_month_end_is_clamped():
    assert parse_time("last 1 month", dt.datetime(2026, 3, 31, tzinfo=UTC))[0] == d(2026, 2, 28)


def test_the_earliest_phrase_wins_and_is_removed_from_the_search_text():
    parsed = parse("what did Acme say about pricing last month, not in March?", KNOWN, NOW)
    assert (parsed.start, parsed.end) == (d(2026, 10, 1), d(2026, 11, 1))
    assert parsed.time_phrase == "last month"
    assert "last month" not in parsed.text and "pricing" in parsed.text


@pytest.mark.parametrize("question,sources,kinds", [
    ("what did Acme say on Slack", ["slack"], []),
    ("Gong calls with Globex", ["gong"], ["call"]),
    ("hubspot notes and emails", ["hubspot"], ["email", "note"]),
    ("SFDC tasks", ["salesforce"], ["task"]),
    ("salesforce or hubspot meetings", ["hubspot", "salesforce"], ["meeting"]),
    ("pricing objections", [], []),
])
def test_sources_and_kinds(question, sources, kinds):
    parsed = parse(question, KNOWN, NOW)
    assert parsed.sources == sources and parsed.kinds == kinds


@pytest.mark.parametrize("question,ids", [
    ("what did Acme say about pricing last month?", ["c1"]),
    ("what did acme corp ask", ["c1"]),
    ("globex pricing", ["c2"]),
    ("Globex Inc. integration", ["c2"]),
    ("what did Renee Johansson say", ["p1"]),  # no accent in the question
    ("renée johanson on pricing", ["p1"]),  # one letter off
    ("James Baker and Adatum", ["p2", "c3"]),
    ("what did customers say about pricing", []),
    ("co-op pricing", []),  # a two-letter name is never matched in prose
    ("acmee pricing", []),  # a short single word must match exactly
])
def test_entity_names(question, ids):
    assert sorted(e["id"] for e in match_entities(question, KNOWN)) == sorted(ids)


def test_entities_carry_what_matched():
    [found] = parse("what did Acme say", KNOWN, NOW).entities
    assert found == {"id": "c1", "type": "company", "name": "Acme Corp", "matched": "acme", "score": 100.0}


def test_source_words_are_not_entity_names():
    known = KNOWN + [KnownEntity("p9", "person", "Gong"), KnownEntity("p8", "person", "Slack Calls")]
    assert parse("pricing on gong calls in slack calls", known, NOW).entities == []


def test_fold():
    assert fold("Renée  Johansson, Jr.") == "renee johansson jr"


_WORDS = st.sampled_from(["last", "past", "previous", "this", "in", "during", "since", "after", "before", "until",
                          "between", "and", "from", "to", "on", "the", "q1", "q4", "quarter", "days", "weeks",
                          "months", "years", "week", "month", "year", "december", "jan", "sept", "today",
                          "yesterday", "acme", "pricing", "a", "two", "twelve"])
_NUMBERS = st.one_of(st.integers(0, 10**25), st.integers(0, 9999).map(lambda y: f"{y:04d}"))
_DATES = st.builds(lambda y, m, day: f"{y:04d}-{m:02d}-{day:02d}", st.integers(0, 9999), st.integers(0, 13),
                   st.integers(0, 32))


@given(st.lists(st.one_of(_WORDS, _NUMBERS.map(str), _DATES), max_size=8).map(" ".join))
@settings(max_examples=400, deadline=None)
def test_any_question_parses_to_an_ordered_range_or_none(question):
    start, end, phrase = parse_time(question, NOW)
    assert start is None or end is None or start < end, (question, start, end)
    assert (phrase is None) == (start is None and end is None)
    parse(question, KNOWN, now=NOW)  # the whole parser, entities included, never raises either
