"""Deterministic chunking of interactions into embeddable pieces.

Chunk ids are ``uuid5(CHUNK_NAMESPACE, "<interaction_key>#<ordinal>")``: re-chunking an edited
interaction keeps the ids of its positions, so vectors are upserted in place rather than leaking
orphans, and ``content_hash`` tells the embed phase which positions actually changed.

Token counts are an estimate, not the tokenizer: ``\\w+|[^\\w\\s]`` pieces times 1.3, rounded up.
It approximates the all-MiniLM-L6-v2 WordPiece tokenizer and errs high on ordinary prose, on
purpose: the model silently truncates at 256 word-pieces, so a chunk packed to MAX_TOKENS=200
estimated tokens stays inside the window with room for the special tokens. Running the real
tokenizer here would tie a pure module to model files and cost ~10x the time.

Everything is a function of the arguments only (no clock, no randomness, no dict ordering from
outside), so the same input always yields the same chunks.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_TOKENS = 200
OVERLAP_TOKENS = 40
TOKEN_FACTOR = 1.3

#: Fixed forever: changing it would re-key every stored chunk.
CHUNK_NAMESPACE = uuid.UUID("6f1c3a52-1d7e-5b1a-9c0e-3b7d2a9e4c10")

#: Interaction kinds whose turns carry offsets from the start of a recording.
TIMED_KINDS = frozenset({"call", "meeting"})

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n+")
_SENTENCE_RE = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")


def _squash(text: str) -> str:
    """Runs of whitespace as one space, trimmed: what ``re.sub(r"\\s+", " ", text).strip()`` gives,
    five times faster (``str.split()`` splits on the characters ``\\s`` matches: ``str.isspace``)."""
    return " ".join(text.split())


def estimate_tokens(text: str | None) -> int:
    if not text:
        return 0
    return math.ceil(_pieces(text) * TOKEN_FACTOR)


# ASCII text counted without building a list of token strings: each byte becomes "a" (a word
# character), " " (whitespace) or "." (anything else), as the regex's own \\w and \\s classify it;
# the pieces are then the runs of "a" plus the "."s. Same count, a fraction of ``findall``'s cost.
_SHAPE = bytes(
    ord("a") if re.fullmatch(r"\w", chr(c)) else ord(" ") if re.fullmatch(r"\s", chr(c)) else ord(".")
    for c in range(128)) + b"." * 128  # only ASCII text is shaped


def _pieces(text: str) -> int:
    """Raw ``\\w+|[^\\w\\s]`` pieces: joining texts with whitespace adds theirs up exactly."""
    if not text.isascii():
        return len(_TOKEN_RE.findall(text))
    shape = b" " + text.encode().translate(_SHAPE)
    return shape.count(b" a") + shape.count(b".a") + shape.count(b".")


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    token_count: int
    start_ms: int | None
    end_ms: int | None
    speakers: list[str] = field(default_factory=list)
    content_hash: str = ""
    chunk_id: str = ""


_NAMESPACE_SHA1 = hashlib.sha1(CHUNK_NAMESPACE.bytes)


def chunk_id_for(interaction_key: str, ordinal: int) -> str:
    """``str(uuid.uuid5(CHUNK_NAMESPACE, "<key>#<ordinal>"))``, without building UUID objects
    (a third of chunking's cost at 100k chunks): SHA-1 of namespace + name, version 5 and
    RFC 4122 variant bits set, formatted 8-4-4-4-12."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(f"{interaction_key}#{ordinal}".encode("utf-8"))
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Unit(NamedTuple):
    """One packable piece; ``joiner`` is what separates it from the unit before it.

    A NamedTuple rather than a frozen dataclass: as immutable, and several times cheaper to
    create (one per turn or paragraph)."""

    text: str
    tokens: int
    joiner: str
    start_ms: int | None = None
    end_ms: int | None = None
    speaker: str | None = None
    overlappable: bool = True
    pieces: int = 0  # raw token pieces, so a window's estimate needs no second pass over its text


def _unit(text: str, joiner: str, start_ms: int | None = None, end_ms: int | None = None,
          speaker: str | None = None, overlappable: bool = True) -> _Unit:
    pieces = _pieces(text)
    return _Unit(text, math.ceil(pieces * TOKEN_FACTOR), joiner, start_ms, end_ms, speaker, overlappable, pieces)


def _split_words(text: str, budget: int) -> list[str]:
    """Greedy word packing; a single word over budget is cut at token boundaries."""
    per_piece = max(1, int(budget / TOKEN_FACTOR))
    pieces: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for word in text.split():
        n = _pieces(word)
        if n > per_piece:
            if current:
                pieces.append(" ".join(current))
                current, current_tokens = [], 0
            toks = _TOKEN_RE.findall(word)
            pieces.extend("".join(toks[i : i + per_piece]) for i in range(0, n, per_piece))
            continue
        if current and current_tokens + n > per_piece:
            pieces.append(" ".join(current))
            current, current_tokens = [], 0
        current.append(word)
        current_tokens += n
    if current:
        pieces.append(" ".join(current))
    return pieces


def _split_long(text: str, budget: int, *, pack: bool = False) -> list[str]:
    """Sentences first, falling back to words for a sentence that alone exceeds ``budget``.

    ``pack`` joins consecutive sentences up to ``budget`` so a long turn becomes few pieces, each
    carrying the speaker prefix once.
    """
    out: list[str] = []
    for sentence in _SENTENCE_RE.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if estimate_tokens(sentence) <= budget:
            out.append(sentence)
        else:
            out.extend(_split_words(sentence, budget))
    if not pack:
        return out
    packed: list[str] = []
    used = 0
    for piece in out:
        n = estimate_tokens(piece)
        if packed and used + n <= budget:
            packed[-1] += " " + piece
            used += n
        else:
            packed.append(piece)
            used = n
    return packed


def _fmt_offset(ms: int) -> str:
    seconds = max(0, int(ms)) // 1000
    return f"[{seconds // 60:02d}:{seconds % 60:02d}]"


def _turn_units(kind: str, turns: list[dict], max_tokens: int) -> list[_Unit]:
    timed = kind in TIMED_KINDS
    units: list[_Unit] = []
    for turn in turns:
        text = _squash(turn.get("text") or "")
        if not text:
            continue
        speaker = (turn.get("speaker_name") or "").strip() or None
        start, end = turn.get("start_ms"), turn.get("end_ms")
        prefix = ""
        if timed and start is not None:
            prefix = _fmt_offset(start) + " "
        if speaker:
            # a name is shown in at most a quarter of the budget: a junk name as long as the budget
            # would push every piece of the turn past it (and the embedder would cut what follows)
            shown = speaker if estimate_tokens(speaker) <= max_tokens // 4 else _split_words(speaker, max_tokens // 4)[0]
            prefix += f"{shown}: "
        rendered = prefix + text
        unit = _unit(rendered, "\n", start, end, speaker)
        if unit.tokens <= max_tokens:
            units.append(unit)
            continue
        # Every piece repeats the prefix so a chunk that starts mid-turn still says who spoke when.
        budget = max(1, max_tokens - estimate_tokens(prefix))
        for piece in _split_long(text, budget, pack=True):
            rendered = prefix + piece
            units.append(_unit(rendered, "\n", start, end, speaker))
    return units


def _body_units(body: str, max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in _PARAGRAPH_RE.split(body.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        unit = _unit(paragraph, "\n\n")
        if unit.tokens <= max_tokens:
            units.append(unit)
            continue
        for i, piece in enumerate(_split_long(paragraph, max_tokens)):
            units.append(_unit(piece, "\n\n" if i == 0 else " "))
    return units


def _pack(units: list[_Unit], max_tokens: int, overlap_tokens: int) -> list[list[_Unit]]:
    """Greedy windows of consecutive units; the last unit of a closed window is repeated at the
    start of the next one when it is small, so a thought cut at a boundary keeps its context.

    Sums of per-unit estimates bound the estimate of the joined text from above (rounding up per
    unit), so a window accepted here never exceeds ``max_tokens`` once joined.
    """
    windows: list[list[_Unit]] = []
    window: list[_Unit] = []
    used = 0
    for unit in units:
        if window and used + unit.tokens > max_tokens:
            windows.append(window)
            last = window[-1]
            if (
                overlap_tokens > 0
                and last.overlappable
                and last.tokens <= overlap_tokens
                and last.tokens + unit.tokens <= max_tokens
            ):
                window, used = [last], last.tokens
            else:
                window, used = [], 0
        window.append(unit)
        used += unit.tokens
    if window:
        windows.append(window)
    return windows


def _render(window: list[_Unit]) -> str:
    parts: list[str] = []
    for i, unit in enumerate(window):
        if i:
            parts.append(unit.joiner)
        parts.append(unit.text)
    return "".join(parts)


def chunk_interaction(
    interaction_key: str,
    kind: str,
    title: str | None,
    body: str | None,
    turns: list[dict] | None,
    *,
    max_tokens: int = MAX_TOKENS,
    overlap_tokens: int = OVERLAP_TOKENS,
) -> list[ChunkDraft]:
    """Cut one interaction into ordered chunks.

    Turns (call transcripts, thread messages) win over ``body`` when both exist, since a body is
    then usually a summary of the same conversation. The title, when present, opens the first
    chunk and is never repeated as overlap.
    """
    if max_tokens < 24:  # room for a turn's time and speaker prefix and some of its text
        raise ValueError("max_tokens must be at least 24")
    units: list[_Unit] = []
    title = _squash(title or "")
    if title:
        fits = estimate_tokens(title) <= max_tokens
        pieces = [title] if fits else _split_words(title, max_tokens)
        for piece in pieces:
            units.append(_unit(piece, "\n\n", overlappable=False))
    content = _turn_units(kind, turns, max_tokens) if turns else []
    if not content and body and body.strip():
        content = _body_units(body, max_tokens)
    if units and content:
        content[0] = content[0]._replace(joiner="\n\n")
    units.extend(content)
    if not units:
        return []

    drafts: list[ChunkDraft] = []
    for ordinal, window in enumerate(_pack(units, max_tokens, overlap_tokens)):
        text = _render(window)
        starts = [u.start_ms for u in window if u.start_ms is not None]
        ends = [u.end_ms for u in window if u.end_ms is not None]
        speakers: list[str] = []
        for u in window:
            if u.speaker and u.speaker not in speakers:
                speakers.append(u.speaker)
        drafts.append(
            ChunkDraft(
                ordinal=ordinal,
                text=text,
                # units are joined by whitespace only, so their pieces add up to the text's
                token_count=math.ceil(sum(u.pieces for u in window) * TOKEN_FACTOR),
                start_ms=min(starts) if starts else None,
                end_ms=max(ends) if ends else None,
                speakers=speakers,
                content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                chunk_id=chunk_id_for(interaction_key, ordinal),
            )
        )
    return drafts
