"""The context pruning algorithm (DESIGN §6): tier order, the budget, the relevance threshold."""
from __future__ import annotations

import datetime as dt

from api.context_pruning import ContextItem, compress, prune
from common.chunking import estimate_tokens

NOW = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def words(n: int, word: str = "pricing") -> str:
    return " ".join([word] * n)


def item(key, days, score, n=10, essential=False) -> ContextItem:
    return ContextItem(key=key, text=words(n), occurred_at=ago(days), score=score, essential=essential)


def test_tier_order_essential_recent_relevant_then_compressed():
    items = [item("old-low", 40, 0.3), item("old-high", 30, 0.95), item("recent-old", 6, 0.1),
             item("recent-new", 1, 0.2), item("must", 90, 0.5, essential=True), item("old-high2", 20, 0.85),
             item("old-mid", 50, 0.6, n=100)]
    kept = prune(items, budget_tokens=10_000, now=NOW)
    assert [(i.key, i.tier) for i in kept] == [
        ("must", "essential"), ("recent-new", "recent"), ("recent-old", "recent"),
        ("old-high", "relevant"), ("old-high2", "relevant"), ("old-mid", "compressed"), ("old-low", "compressed")]
    old_mid = next(i for i in kept if i.key == "old-mid")
    assert old_mid.compressed and old_mid.tokens <= 48 and old_mid.text.endswith("…")


def test_relevance_threshold_is_strictly_above_0_8():
    kept = prune([item("at", 30, 0.8), item("above", 30, 0.81)], 10_000, NOW)
    assert {i.key: i.tier for i in kept} == {"above": "relevant", "at": "compressed"}


def test_items_from_exactly_7_days_ago_are_recent_and_older_are_not():
    kept = prune([item("edge", 7, 0.1), item("older", 7.01, 0.1)], 10_000, NOW)
    assert {i.key: i.tier for i in kept} == {"edge": "recent", "older": "compressed"}


def test_budget_is_never_exceeded_and_smaller_items_still_fit():
    per_item = estimate_tokens(words(10))
    items = [item("big-recent", 1, 0.5, n=400), item("small-recent", 2, 0.5), item("relevant", 30, 0.9)]
    budget = per_item * 2 + 5
    kept = prune(items, budget, NOW)
    assert sum(i.tokens for i in kept) <= budget
    assert sum(estimate_tokens(i.text) for i in kept) == sum(i.tokens for i in kept)
    keys = [i.key for i in kept]
    assert "small-recent" in keys and "relevant" in keys
    big = [i for i in kept if i.key == "big-recent"]
    assert not big or big[0].compressed  # never whole: it alone is over budget


def test_an_essential_item_over_budget_is_compressed_not_dropped():
    kept = prune([item("must", 100, 0.1, n=1000, essential=True)], 60, NOW)
    assert kept[0].key == "must" and kept[0].compressed and kept[0].tokens <= 60


def test_a_tiny_budget_keeps_nothing_rather_than_overflowing():
    assert prune([item("a", 1, 0.9), item("b", 30, 0.9)], 3, NOW) == []


def test_items_without_a_time_are_never_recent():
    kept = prune([ContextItem("t", "no time here", None, 0.9)], 100, NOW)
    assert kept[0].tier == "relevant"


def test_compress_keeps_leading_sentences():
    text = "First point about pricing. " + words(200, "second")
    assert compress(text, 20) == "First point about pricing. …"
    assert compress("short", 20) == "short"
    assert estimate_tokens(compress(words(300), 20)) <= 20
