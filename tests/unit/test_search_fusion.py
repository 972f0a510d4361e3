import pytest

from embed_worker.search import RRF_K, rrf

pytestmark = pytest.mark.unit


def test_rrf_puts_what_both_rankings_found_first():
    fused = rrf({"vector": ["a", "b", "c"], "keyword": ["c", "d"]})
    assert [i for i, _, _ in fused] == ["c", "a", "b", "d"]
    by_id = {i: (score, names) for i, score, names in fused}
    assert by_id["c"] == (pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1)), ["vector", "keyword"])
    assert by_id["a"] == (pytest.approx(1 / (RRF_K + 1)), ["vector"])


def test_rrf_ties_keep_the_first_ranking_then_id():
    fused = rrf({"vector": ["x", "y"], "keyword": ["y", "x"]})
    assert [i for i, _, _ in fused] == ["x", "y"]  # same fused score: vector order wins
    assert rrf({"a": ["q"], "b": ["p"]})[0][0] == "q"
    assert rrf({}) == [] and rrf({"vector": []}) == []
