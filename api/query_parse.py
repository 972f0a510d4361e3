"""Understanding a natural-language question: which entities, sources, kinds and time range.

Pure: the caller passes the known persons/companies and ``now``, so "last month" is testable.
Time ranges are half-open ``[start, end)`` in UTC. Entity names are matched with rapidfuzz on word
windows of the question (so "Acme" finds "Acme Corp" and a dropped accent still matches), after
stripping legal suffixes ("Inc", "LLC", ...) from company names.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Optional

from rapidfuzz import fuzz

UTC = dt.timezone.utc
SOURCES = ("gong", "slack", "hubspot", "salesforce")
_SOURCE_WORDS = {"gong": "gong", "slack": "slack", "hubspot": "hubspot", "salesforce": "salesforce",
                 "sfdc": "salesforce"}
_KIND_WORDS = {"call": "call", "calls": "call", "email": "email", "emails": "email", "meeting": "meeting",
               "meetings": "meeting", "note": "note", "notes": "note", "task": "task", "tasks": "task",
               "thread": "thread", "threads": "thread", "message": "thread", "messages": "thread"}
_LEGAL_SUFFIXES = {"inc", "incorporated", "corp", "corporation", "co", "company", "llc", "ltd", "limited",
                   "plc", "gmbh", "ag", "sa", "srl", "bv", "group", "holdings", "the"}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS["sept"] = 9
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7}
_NUMBER_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "twelve": 12}
#: rapidfuzz ratio (0-100) a window of the question needs to count as naming an entity
MATCH_THRESHOLD = 88.0


@dataclass(frozen=True)
class KnownEntity:
    id: str
    type: str  # "person" or "company"
    name: str


@dataclass
class ParsedQuery:
    question: str
    text: str  # the question without the time and source phrases: what semantic search embeds
    start: Optional[dt.datetime] = None
    end: Optional[dt.datetime] = None
    sources: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    entities: list[dict] = field(default_factory=list)  # {"id", "type", "name", "matched", "score"}
    time_phrase: Optional[str] = None

    def as_dict(self) -> dict:
        return {"text": self.text, "from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None, "time_phrase": self.time_phrase,
                "sources": self.sources, "kinds": self.kinds, "entities": self.entities}


# ---- time ----

def _day(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)


def _month_start(year: int, month: int) -> dt.datetime:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return dt.datetime(year, month, 1, tzinfo=UTC)


def _month_range(year: int, month: int) -> tuple[dt.datetime, Optional[dt.datetime]]:
    start = _month_start(year, month)
    return start, _month_start(year, month + 1) if (year, month) < (dt.MAXYEAR, 12) else None


def _add_months(day: dt.datetime, months: int) -> dt.datetime:
    first = _month_start(day.year, day.month + months)
    return first.replace(day=min(day.day, calendar.monthrange(first.year, first.month)[1]))


def _latest_year_for_month(month: int, now: dt.datetime) -> int:
    """"in March" means the most recent March that has begun."""
    return now.year if month <= now.month else now.year - 1


def _number(word: str) -> Optional[int]:
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word)


def _parse_date(text: str) -> Optional[dt.datetime]:
    try:
        return _day(dt.date.fromisoformat(text))
    except ValueError:
        return None


_TIME_PATTERNS: list[tuple[re.Pattern, str]] = [(re.compile(p, re.I), name) for p, name in [
    (r"\bbetween (\d{4}-\d{2}-\d{2}) and (\d{4}-\d{2}-\d{2})\b", "between_dates"),
    (r"\bfrom (\d{4}-\d{2}-\d{2}) (?:to|until|till) (\d{4}-\d{2}-\d{2})\b", "between_dates"),
    (r"\b(?:in |during )?(?:the )?(q[1-4]|first quarter|second quarter|third quarter|fourth quarter)"
     r"(?: of)?(?: (\d{4}))?\b", "quarter"),
    (r"\b(?:in |during |over )?(?:the )?(last|past|previous) (\d+|a|one|two|three|four|five|six|seven|"
     r"eight|nine|ten|twelve) (days?|weeks?|months?|years?)\b", "last_n"),
    (r"\b(?:in |during |over )?(last|this|previous|past|current) (week|month|quarter|year)\b", "relative_period"),
    (r"\b(yesterday|today)\b", "day_word"),
    (r"\b(since|after|before|until) (\d{4}-\d{2}-\d{2})\b", "open_date"),
    (rf"\b(since|after|before|until) ({_MONTH_RE})\.?(?: (\d{{4}}))?\b", "open_month"),
    (r"\b(?:on )?(\d{4}-\d{2}-\d{2})\b", "on_date"),
    (rf"\b(?:in |during )?({_MONTH_RE})\.? (\d{{4}})\b", "month_year"),
    (rf"\b(?:in|during) ({_MONTH_RE})\b", "month"),
    (r"\b(?:in|during) (\d{4})\b", "year"),
]]
_QUARTER_WORDS = {"first quarter": 1, "second quarter": 2, "third quarter": 3, "fourth quarter": 4}


def _time_range(name: str, groups: tuple, now: dt.datetime) -> Optional[tuple[Optional[dt.datetime],
                                                                          Optional[dt.datetime]]]:
    today = _day(now.astimezone(UTC).date())
    g = [x.lower() if isinstance(x, str) else x for x in groups]
    if name == "between_dates":
        a, b = _parse_date(g[0]), _parse_date(g[1])
        if not (a and b and a <= b):
            return None
        return a, b + dt.timedelta(days=1) if b.date() < dt.date.max else None
    if name == "quarter":
        q = int(g[0][1]) if g[0].startswith("q") else _QUARTER_WORDS[g[0]]
        year = int(g[1]) if g[1] else (now.year if (q - 1) * 3 + 1 <= now.month else now.year - 1)
        return _month_start(year, (q - 1) * 3 + 1), _month_start(year, q * 3 + 1) if (year, q) < (dt.MAXYEAR, 4) else None
    if name == "last_n":
        n = _number(g[1])
        if not n:
            return None
        unit = g[2]
        try:
            if unit.startswith("month") or unit.startswith("year"):
                start = _add_months(today, -n * (12 if unit.startswith("year") else 1))
            else:
                start = today - dt.timedelta(days=n * _UNITS[unit])
        except (OverflowError, ValueError):  # further back than year 1: since the beginning
            start = None
        return start, today + dt.timedelta(days=1)
    if name == "relative_period":
        which, unit = g
        if which == "past":  # "the past week" is the rolling one; "last week" the calendar one
            return _time_range("last_n", (which, "1", unit), now)
        back = 1 if which in ("last", "previous", "past") else 0
        if unit == "week":  # weeks start on Monday (ISO)
            start = today - dt.timedelta(days=today.weekday() + 7 * back)
            return start, start + dt.timedelta(days=7)
        if unit == "month":
            return _month_range(today.year, today.month - back)
        if unit == "quarter":
            q_start = _month_start(today.year, (today.month - 1) // 3 * 3 + 1 - 3 * back)
            return q_start, _month_start(q_start.year, q_start.month + 3)
        return dt.datetime(today.year - back, 1, 1, tzinfo=UTC), dt.datetime(today.year - back + 1, 1, 1, tzinfo=UTC)
    if name == "day_word":
        start = today - dt.timedelta(days=1 if g[0] == "yesterday" else 0)
        return start, start + dt.timedelta(days=1)
    if name in ("open_date", "open_month"):
        if name == "open_date":
            at = _parse_date(g[1])
            if at is None:
                return None
            after_end = at + dt.timedelta(days=1) if at.date() < dt.date.max else None
        else:
            month = _MONTHS[g[1]]
            year = int(g[2]) if g[2] else _latest_year_for_month(month, now)
            at, after_end = _month_range(year, month)
        if g[0] == "since":
            return at, None
        if g[0] == "after":
            return (after_end, None) if after_end else None
        return None, at  # before / until: up to the start of that day or month
    if name == "on_date":
        at = _parse_date(g[0])
        return (at, at + dt.timedelta(days=1) if at.date() < dt.date.max else None) if at else None
    if name == "month_year":
        return _month_range(int(g[1]), _MONTHS[g[0]])
    if name == "month":
        month = _MONTHS[g[0]]
        return _month_range(_latest_year_for_month(month, now), month)
    if name == "year":
        year = int(g[0])
        return (dt.datetime(year, 1, 1, tzinfo=UTC), dt.datetime(year + 1, 1, 1, tzinfo=UTC)) if 1990 <= year <= 2100 else None
    return None


def parse_time(question: str, now: dt.datetime) -> tuple[Optional[dt.datetime], Optional[dt.datetime], Optional[str]]:
    """The first time expression in ``question`` as ``(start, end, phrase)``; Nones when there is none."""
    best: Optional[tuple[int, re.Match, str]] = None
    for pattern, name in _TIME_PATTERNS:
        m = pattern.search(question)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), m, name)
    if best is None:
        return None, None, None
    _, m, name = best
    try:
        got = _time_range(name, m.groups(), now)
    except (OverflowError, ValueError):  # a time the calendar cannot hold ("in January 0000"): no filter
        got = None
    if got is None:
        return None, None, None
    return got[0], got[1], m.group(0).strip()


# ---- entities ----

def fold(text: str) -> str:
    """Lower case without accents or punctuation: "Renée Johansson," -> "renee johansson"."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def name_forms(entity: KnownEntity) -> list[str]:
    """The ways a question may name ``entity``: the full name, and for companies without suffixes."""
    full = fold(entity.name)
    if not full:
        return []
    forms = [full]
    if entity.type == "company":
        words = [w for w in full.split() if w not in _LEGAL_SUFFIXES]
        short = " ".join(words)
        if short and short != full and len(short) >= 3:
            forms.append(short)
    return forms


def match_entities(question: str, known: Iterable[KnownEntity], threshold: float = MATCH_THRESHOLD) -> list[dict]:
    """Entities named in ``question``, best match first; each with the words that matched."""
    words = fold(question).split()
    windows: dict[int, set[str]] = {}
    for size in range(1, 5):
        windows[size] = {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}
    found: dict[str, dict] = {}
    for entity in known:
        for form in name_forms(entity):
            if len(form) < 3:  # "Co", "AB": too ambiguous to find in prose
                continue
            size = len(form.split())
            candidates = windows.get(size, set())
            if not candidates:
                continue
            # single short words must match exactly: "Co" or "Ann" would match too much by fuzz
            if size == 1 and len(form) < 5:
                score, hit = (100.0, form) if form in candidates else (0.0, None)
            else:
                score, hit = max(((fuzz.ratio(form, c), c) for c in candidates), default=(0.0, None))
            if score >= threshold and (entity.id not in found or score > found[entity.id]["score"]):
                found[entity.id] = {"id": entity.id, "type": entity.type, "name": entity.name,
                                    "matched": hit, "score": round(score, 1)}
    return sorted(found.values(), key=lambda e: (-e["score"], -len(e["matched"]), e["name"]))


# ---- the whole question ----

def parse(question: str, known: Iterable[KnownEntity] = (), now: Optional[dt.datetime] = None) -> ParsedQuery:
    now = now or dt.datetime.now(UTC)
    start, end, phrase = parse_time(question, now)
    text = question.replace(phrase, " ") if phrase else question
    lowered = re.findall(r"[a-z]+", question.lower())
    sources = sorted({_SOURCE_WORDS[w] for w in lowered if w in _SOURCE_WORDS})
    kinds = sorted({_KIND_WORDS[w] for w in lowered if w in _KIND_WORDS})
    # "on gong calls" names a source, even if some record is called "Gong"
    entities = [e for e in match_entities(question, known)
                if not set(e["matched"].split()) <= set(_SOURCE_WORDS) | set(_KIND_WORDS)]
    text = re.sub(r"\s+", " ", text).strip(" ?.!,") or question.strip()
    return ParsedQuery(question=question, text=text, start=start, end=end, sources=sources, kinds=kinds,
                       entities=entities, time_phrase=phrase)
