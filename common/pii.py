"""PII detection and masking (DESIGN.md section 10).

Two policies use this module:

* ``mask_sensitive`` runs at ingest: card numbers and US social security numbers are never
  stored in clear anywhere, dead-lettered raw records included (``mask_obj``).
* ``mask`` (all kinds) runs before text leaves Postgres: embedding or language-model calls,
  logs, the vector store.

Detection favours precision on things that look like PII but are not (dates, order ids, ms
timestamps in prose are common in CRM text), so every numeric kind is validated: cards by Luhn,
IBANs by ISO 7064 mod-97, SSNs by the SSA's never-issued ranges, phones by digit count.
Everything is pure and regex-based; no state, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
SSN = "ssn"

ALL: frozenset[str] = frozenset({EMAIL, PHONE, CARD, IBAN, SSN})
SENSITIVE: frozenset[str] = frozenset({CARD, SSN})

PLACEHOLDERS: dict[str, str] = {k: f"[{k.upper()}]" for k in ALL}

# When two detections overlap the more specific one wins: an IBAN's digits can also look like a
# card or phone, a card's groups like a phone number.
_PRIORITY = {EMAIL: 0, IBAN: 1, CARD: 2, SSN: 3, PHONE: 4}

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)

# Card layouts actually printed: a bare run, 4-4-4-4(-1..4) with one consistent separator, or
# Amex 4-6-5. Accepting any separator anywhere would let lists like "2024-01-15 2024-01-16" in.
_CARD_RE = re.compile(
    r"(?<![\d+-])(?:"
    r"\d{13,19}"
    r"|\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?:(?P=s1)\d{4})?(?:(?P=s1)\d{1,4})?"
    r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5}"
    r")(?![\d])"
)

# Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN_RE = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")

# Uppercase only: lowercased "de89..." strings are far more often hashes or ids than IBANs.
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")

# Three shapes, each anchored on something phone-specific so that dates, versions, IPs and ids do
# not match: an international "+cc" prefix, the North American 3-3-4 layout, or a national trunk
# "0" prefix with separated groups. Nothing may start right after "<digit><separator>": that is
# the middle of a longer grouped number (card, IBAN, account id), not a phone.
_PHONE_RE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}"
    r"|(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"|0[1-9]\d{0,3}[ -]\d{3,4}[ -]\d{3,4}"
    r")(?![\w])"
)

_DIGIT_RE = re.compile(r"\d")
_SEP_RE = re.compile(r"[ -]")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    # Letters become 10..35; fold the number digit by digit to avoid building a huge int.
    rem = 0
    for ch in rearranged:
        if ch.isdigit():
            rem = (rem * 10 + ord(ch) - 48) % 97
        else:
            rem = (rem * 100 + ord(ch) - 55) % 97
    return rem == 1


def _card_span(m: re.Match[str]) -> tuple[int, int] | None:
    """The validated card inside a candidate, or None.

    The optional trailing group can swallow an unrelated number ("4111 1111 1111 1111 12 pcs"),
    so when the whole candidate fails Luhn its last group is dropped once and retried.
    """
    start, end = m.span()
    text = m.group(0)
    digits = _SEP_RE.sub("", text)
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return start, end
    cut = max(text.rfind(" "), text.rfind("-"))
    if cut > 0:
        head = _SEP_RE.sub("", text[:cut])
        if 13 <= len(head) <= 19 and luhn_ok(head):
            return start, start + cut
    return None


def _iban_span(m: re.Match[str]) -> tuple[int, int] | None:
    """The validated IBAN inside a candidate, or None.

    The grouped form can run into following words ("DE89 3704 0044 0532 0130 00 EUR"), so
    trailing space-separated groups are dropped until the checksum holds or too little is left.
    """
    start = m.start()
    text = m.group(0)
    while len(text.replace(" ", "")) >= 15:
        if iban_ok(text):
            return start, start + len(text)
        cut = text.rfind(" ")
        if cut <= 0:
            return None
        text = text[:cut]
    return None


def _phone_span(m: re.Match[str]) -> tuple[int, int] | None:
    digits = sum(ch.isdigit() for ch in m.group(0))
    return m.span() if 7 <= digits <= 15 else None


def _candidates(text: str, kinds: frozenset[str]) -> Iterable[tuple[str, int, int]]:
    # Cheap pre-checks skip whole regex scans: most strings have no "@" and many no digits.
    if EMAIL in kinds and "@" in text:
        for m in _EMAIL_RE.finditer(text):
            yield EMAIL, m.start(), m.end()
    if not _DIGIT_RE.search(text):
        return
    if IBAN in kinds:
        for m in _IBAN_RE.finditer(text):
            span = _iban_span(m)
            if span:
                yield IBAN, *span
    if CARD in kinds:
        for m in _CARD_RE.finditer(text):
            span = _card_span(m)
            if span:
                yield CARD, *span
    if SSN in kinds and "-" in text:
        for m in _SSN_RE.finditer(text):
            yield SSN, m.start(), m.end()
    if PHONE in kinds:
        for m in _PHONE_RE.finditer(text):
            span = _phone_span(m)
            if span:
                yield PHONE, *span


def find(text: str, kinds: Iterable[str] = ALL) -> list[tuple[str, int, int]]:
    """Non-overlapping PII spans ``(kind, start, end)`` ordered by position."""
    if not text:
        return []
    wanted = frozenset(kinds)
    unknown = wanted - ALL
    if unknown:
        raise ValueError(f"unknown PII kinds: {sorted(unknown)}")
    found = sorted(_candidates(text, wanted), key=lambda c: (_PRIORITY[c[0]], c[1], -c[2]))
    accepted: list[tuple[str, int, int]] = []
    for kind, start, end in found:
        if all(end <= s or start >= e for _, s, e in accepted):
            accepted.append((kind, start, end))
    accepted.sort(key=lambda c: c[1])
    return accepted


def mask(text: str, kinds: Iterable[str] = ALL, keep: Iterable[str] = ()) -> str:
    """``text`` with every detected span replaced by its placeholder (``[EMAIL]`` ...); a span
    whose text is one of ``keep`` (known identifiers) stays."""
    if not text:
        return text
    spans = find(text, kinds)
    if keep:
        kept = frozenset(keep)
        spans = [span for span in spans if text[span[1]:span[2]] not in kept]
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for kind, start, end in spans:
        out.append(text[pos:start])
        out.append(PLACEHOLDERS[kind])
        pos = end
    out.append(text[pos:])
    return "".join(out)


# What any match of _CARD_RE or _SSN_RE must contain: a bare card is 13+ digits in a row, a
# grouped one "dddd dddd dddd" or "dddd dddddd dddd" (either separator), an SSN "ddd-dd-dddd".
# Text without any of these cannot hold one, and most stored text (ids, epoch seconds, Slack
# ts, dates) has none, so ``mask_sensitive`` skips the full scan. The leading ``\d`` is factored
# out of the branches so the regex engine skips non-digits fast instead of trying each branch
# at every position (about twice as fast on metadata strings).
_SENSITIVE_HINT = re.compile(r"\d(?:\d{12}|\d{3}[ -]\d{4}[ -]\d{4}|\d{3}[ -]\d{6}[ -]\d{4}|\d{2}-\d{2}-\d{4})")
SENSITIVE_MIN_LEN = 11  # "ddd-dd-dddd"; every card layout is longer


# The same hint for serialised JSON, without a regex (which tries its pattern at every digit:
# ~30 ns a byte on metadata full of ids and timestamps). Digits become "0" and both separators
# "-", so every text the hint matches becomes one of these four needles (and a few texts it would
# not match do too, e.g. "ddd dd dddd": a needle found only means "look closer").
_HINT_TABLE = bytes.maketrans(b"0123456789 ", b"0000000000-")
_HINT_NEEDLES = (b"0" * 13, b"0000-0000-0000", b"0000-000000-0000", b"000-00-0000")


def may_hold_sensitive(data: bytes) -> bool:
    """False when ``data`` (UTF-8, e.g. JSON text) has no card or SSN anywhere in it.

    Sound for JSON: a string value's digits, spaces and hyphens are written as they are, so a
    card or SSN inside any string of the value shows up in its serialisation.
    """
    if len(data) < SENSITIVE_MIN_LEN:
        return False
    shape = data.translate(_HINT_TABLE)
    return any(needle in shape for needle in _HINT_NEEDLES)


def mask_sensitive(text: str, keep: Iterable[str] = ()) -> str:
    """Mask only what may never be stored in clear (cards, SSNs), but the identifiers in ``keep``
    (a record's own id inside its link: ``.../call?id=7782342021547800002`` passes Luhn)."""
    if len(text) < SENSITIVE_MIN_LEN or not _SENSITIVE_HINT.search(text):
        return text
    return mask(text, SENSITIVE, keep)


# Field names of a source system's own keys: "id", "callId", "speaker_id", "primaryUserIds", "Id".
_IDENTIFIER_FIELD = re.compile(r"(?:^|_)(?:id|Id|ID)s?$|[a-z](?:Id|ID)s?$")  # not "paid", "valid"
_DIGITS = re.compile(r"\d+")


def is_identifier(field: object, value: object) -> bool:
    """True for a bare number under a key-named field: a source system's identifier, not a card.

    Gong's ids are 19-digit numbers and about one in ten passes the Luhn check, so masking them
    would break the references between stored records; a card typed into an id field by a person
    is not a case we have seen, while free text (titles, bodies, notes, transcripts) is always
    scanned. Only whole-digit values are exempt: "id": "card 4111..." is still masked.
    """
    if type(field) is not str or not _IDENTIFIER_FIELD.search(field):
        return False
    if type(value) is str:
        return _DIGITS.fullmatch(value) is not None
    return type(value) is list and all(type(v) is str and _DIGITS.fullmatch(v) for v in value)


def mask_obj(obj: Any) -> Any:
    """A copy of a JSON-like value with ``mask_sensitive`` applied to every string in it.

    Dict keys are field names, not data, and are left alone; non-string scalars pass through, and
    so do the source's own identifiers (:func:`is_identifier`).
    """
    if isinstance(obj, str):
        return mask_sensitive(obj)
    if isinstance(obj, dict):
        return {k: v if is_identifier(k, v) else mask_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(mask_obj(v) for v in obj)
    return obj
