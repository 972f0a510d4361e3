"""Context pruning for anything handed to a language model (DESIGN §6).

Fill a token budget in this order: essential items, then recent ones (the last 7 days), then
highly relevant ones (score > 0.8), then the remaining older items compressed. Within a tier the
best come first (recent: newest first; the others: highest score first). An item that does not fit
whole is tried compressed; an item that does not fit either way is left out and smaller ones after
it may still get in. Pure: the clock and the token counter are arguments.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from common.chunking import estimate_tokens

RECENT_DAYS = 7
RELEVANCE_THRESHOLD = 0.8
COMPRESSED_TOKENS = 48
TIERS = ("essential", "recent", "relevant", "compressed")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ContextItem:
    key: str
    text: str
    occurred_at: Optional[dt.datetime] = None
    score: float = 0.0
    essential: bool = False
    tier: Optional[str] = None
    tokens: int = 0
    compressed: bool = False


def compress(text: str, max_tokens: int = COMPRESSED_TOKENS,
             count: Callable[[str], int] = estimate_tokens) -> str:
    """The leading sentences of ``text`` that fit ``max_tokens``; a cut first sentence ends in '…'."""
    if count(text) <= max_tokens:
        return text
    out = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{out} {sentence}".strip()
        if count(candidate + " …") > max_tokens:
            break
        out = candidate
    if not out:
        words = text.split()
        while words and count(" ".join(words) + " …") > max_tokens:
            words = words[: max(1, len(words) * 3 // 4)] if len(words) > 1 else []
        out = " ".join(words)
    return (out + " …").strip()


def prune(items: Sequence[ContextItem], budget_tokens: int, now: dt.datetime, *,
          recent_days: int = RECENT_DAYS, relevance: float = RELEVANCE_THRESHOLD,
          compressed_tokens: int = COMPRESSED_TOKENS,
          count: Callable[[str], int] = estimate_tokens) -> list[ContextItem]:
    """The items kept, in tier order, each with its ``tier`` and ``tokens``; never over budget."""
    recent_after = now - dt.timedelta(days=recent_days)

    def is_recent(item: ContextItem) -> bool:
        return item.occurred_at is not None and item.occurred_at >= recent_after

    essential = sorted((i for i in items if i.essential), key=lambda i: -i.score)
    rest = [i for i in items if not i.essential]
    recent = sorted((i for i in rest if is_recent(i)), key=lambda i: i.occurred_at, reverse=True)
    relevant = sorted((i for i in rest if not is_recent(i) and i.score > relevance), key=lambda i: -i.score)
    older = sorted((i for i in rest if not is_recent(i) and i.score <= relevance), key=lambda i: -i.score)

    kept: list[ContextItem] = []
    used = 0

    def take(item: ContextItem, tier: str, whole: bool) -> None:
        nonlocal used
        if whole:
            n = count(item.text)
            if used + n <= budget_tokens:
                kept.append(replace(item, tier=tier, tokens=n))
                used += n
                return
        short = compress(item.text, compressed_tokens, count)
        n = count(short)
        if used + n <= budget_tokens:
            kept.append(replace(item, text=short, tier=tier, tokens=n, compressed=short != item.text))
            used += n

    for item in essential:
        take(item, "essential", True)
    for item in recent:
        take(item, "recent", True)
    for item in relevant:
        take(item, "relevant", True)
    for item in older:
        take(item, "compressed", False)
    return kept
