"""The demo's summary text: the sample search reads as a ranked list."""
from __future__ import annotations

import re

import pytest

from common import demo

pytestmark = pytest.mark.unit


def _passage(source_id: str, rank_score: float, score: float, matched_by: list[str]) -> dict:
    return {"chunk_id": source_id, "text": f"text of {source_id}", "score": score, "rank_score": rank_score,
            "matched_by": matched_by, "source": "gong", "source_type": "call", "source_id": source_id,
            "occurred_at": "2026-03-01T10:00:00+00:00", "persons": [{"name": "Ana Ruiz"}], "companies": []}


def _summary(passages: list[dict]) -> dict:
    return {"run": {"run_id": "r", "status": "succeeded", "sources": {}},
            "counts": dict.fromkeys(("interactions", "persons", "companies", "mappings", "chunks",
                                     "chunks_embedded", "dead_letters"), 0),
            "timings": {}, "phase_seconds": {},
            "sample_answer": {"question": "pricing and contract terms", "passages": passages}}


def test_search_lines_show_the_score_they_are_ranked_by_and_the_similarity_labelled():
    # as search returns them: by fused rank, with similarities out of order (0.49, 0.43, 0.45)
    passages = [_passage("a", 0.0325, 0.49, ["vector", "keyword"]), _passage("b", 0.0318, 0.43, ["vector", "keyword"]),
                _passage("c", 0.0161, 0.45, ["vector"])]
    text = demo.render(_summary(passages))
    shown = [line for line in text.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert [re.search(r"gong/call/(\w+)", line).group(1) for line in shown] == ["a", "b", "c"]
    ranks = [float(re.search(r"rank (\d\.\d+)", line).group(1)) for line in shown]
    assert ranks == sorted(ranks, reverse=True) == [0.0325, 0.0318, 0.0161]
    assert [re.search(r"similarity (\d\.\d+)", line).group(1) for line in shown] == ["0.49", "0.43", "0.45"]
    assert "(vector+keyword)" in shown[0] and "(vector)" in shown[2]
    assert "with Ana Ruiz" in text


def test_search_unavailable_is_said():
    text = demo.render(_summary([{"error": "no vector store"}]))
    assert "(unavailable: no vector store)" in text
