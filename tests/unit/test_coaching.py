"""Each coaching metric on hand-built turns (docs/coaching.md), edge cases included."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from api import coaching
from api.coaching import CUSTOMER, REP, CoachingConfig, Turn, call_metrics

CFG = CoachingConfig(interruption_tolerance_ms=3000, silence_tolerance_ms=5000, interactivity_cap_per_min=6.0)
ROLES = {"r": REP, "c": CUSTOMER, "k": "colleague"}


def t(speaker, start_s, end_s, text="", topic=None) -> Turn:
    return Turn(speaker, int(start_s * 1000), None if end_s is None else int(end_s * 1000), text, topic)


def test_talk_ratio_excludes_silence():
    turns = [t("r", 0, 30), t("c", 100, 110), t("r", 500, 510)]  # long silences between turns
    assert coaching.talk_ratio(turns, {"r"}) == pytest.approx(40 / 50)


def test_talk_ratio_of_a_single_speaker_and_of_nothing():
    assert coaching.talk_ratio([t("r", 0, 10), t("r", 11, 20)], {"r"}) == 1.0
    assert coaching.talk_ratio([t("c", 0, 10)], {"r"}) == 0.0
    assert coaching.talk_ratio([t("r", 5, 5), t("c", 9, None)], {"r"}) is None  # zero-length only


def test_overlapping_turns_count_for_both_speakers():
    assert coaching.talk_ratio([t("r", 0, 10), t("c", 5, 15)], {"r"}) == 0.5


def test_monologue_survives_short_backchannels_but_not_long_turns():
    turns = [t("r", 0, 20), t("c", 20.5, 22, "mm-hm"), t("r", 22, 60),  # back-channel of 1.5 s: kept
             t("c", 61, 70, "a real answer"), t("r", 71, 80)]
    m = coaching.longest_stretch(turns, ROLES, REP, CFG)
    assert (m.seconds, m.start_s) == (60.0, 0.0)


def test_monologue_ends_at_a_long_silence():
    turns = [t("r", 0, 10), t("r", 100, 130)]  # 90 s with nobody speaking is not a monologue
    m = coaching.longest_stretch(turns, ROLES, REP, CFG)
    assert (m.seconds, m.start_s) == (30.0, 100.0)


def test_customer_story_survives_a_short_clarifying_question():
    turns = [t("r", 0, 5), t("c", 6, 100), t("r", 100.5, 102, "which system?"), t("c", 102.5, 200), t("r", 201, 230)]
    s = coaching.longest_stretch(turns, ROLES, CUSTOMER, CFG)
    assert (s.seconds, s.start_s) == (194.0, 6.0)


def test_no_customer_means_no_story():
    s = coaching.longest_stretch([t("r", 0, 10)], ROLES, CUSTOMER, CFG)
    assert (s.seconds, s.start_s) == (0.0, None)


def test_interactivity_counts_side_switches_per_minute():
    turns = [t("r", 0, 10), t("k", 10, 20), t("c", 20, 30), t("r", 30, 40), t("c", 40, 50), t("x", 50, 55)]
    assert coaching.side_switches(turns, ROLES) == 3  # a colleague is the same side; unknown x is skipped
    got = coaching.interactivity(turns, ROLES, minutes=1.0, cfg=CFG)
    assert got == {"score": 5.0, "switches_per_min": 3.0, "switches": 3}
    lively = [t("r" if i % 2 else "c", i * 2, i * 2 + 1) for i in range(30)]  # 29 switches in a minute
    assert coaching.interactivity(lively, ROLES, 1.0, CFG)["score"] == 10.0  # capped
    assert coaching.interactivity([], ROLES, 0.0, CFG)["score"] is None


def test_patience_skips_overlaps_and_reports_after_questions():
    turns = [t("c", 0, 10, "We use QuickBooks."), t("r", 11, 20),  # 1 s
             t("c", 20, 30, "Does it sync custom fields?"), t("r", 33, 40),  # 3 s after a question
             t("c", 40, 50, "Fine."), t("r", 49, 55),  # overlap: skipped
             t("c", 60, 70), t("c", 70, 75), t("r", 77, 80)]  # only the last customer turn counts: 2 s
    p = coaching.patience(turns, ROLES)
    assert p["n"] == 3 and p["mean_s"] == pytest.approx(2.0) and p["median_s"] == 2.0
    assert p["after_question"] == {"mean_s": 3.0, "median_s": 3.0, "n": 1}


def test_patience_without_customer():
    assert coaching.patience([t("r", 0, 10)], ROLES)["mean_s"] is None


@pytest.mark.parametrize("sentence,expected", [
    ("Does the sync handle custom fields?", True), ("How do you reconcile today.", True),
    ("Walk me through your process?", True), ("We reconcile by hand.", False), ("", False),
    ("Isn't that slow", True), ("Thursday works.", False)])
def test_is_question(sentence, expected):
    assert coaching.is_question(sentence) is expected


def test_question_rate_per_hour_and_counts_per_side():
    turns = [t("r", 0, 10, "Can you hear me? Great. What do you use today?"), t("k", 10, 12, "Any questions?"),
             t("c", 12, 20, "QuickBooks. Does it sync?")]
    q = coaching.questions(turns, ROLES, hours=0.5)
    assert q == {"rep_per_hour": 4.0, "rep": 2, "company": 3, "customer": 1}
    assert coaching.questions(turns, ROLES, hours=0)["rep_per_hour"] is None


def test_filler_words_per_100_rep_words():
    turns = [t("r", 0, 10, "Um so basically you know it like works"), t("c", 10, 20, "um um um um")]
    f = coaching.filler_words(turns, {"r"})
    assert f["count"] == 4 and f["words"] == 8 and f["per_100_words"] == 50.0
    assert f["items"] == {"um": 1, "basically": 1, "you know": 1, "like": 1}
    assert coaching.filler_words([t("c", 0, 1, "um")], {"r"})["per_100_words"] is None


def test_fillers_are_flagged_against_the_corpus_median():
    calls = [{"metrics": {"filler_words": {"per_100_words": r}}} for r in (1.0, 1.5, 2.0, 6.0, None)]
    assert coaching.flag_fillers(calls, CFG) == 1.75
    assert [c["metrics"]["filler_words"]["flagged"] for c in calls] == [False, False, False, True, False]


def test_topics_from_gong_segments_with_a_main_topic():
    turns = [t("r", 0, 30, topic="Pricing"), t("c", 30, 40, topic="Next Steps"), t("c", 40, 45, topic="Pricing")]
    assert coaching.topics(turns) == {"seconds": {"Pricing": 35.0, "Next Steps": 10.0}, "main": "Pricing",
                                      "source": "gong_segments"}


def test_topics_fall_back_to_keyword_trackers():
    got = coaching.topics([t("r", 0, 20, "What is your budget for this?"), t("c", 20, 25, "We use NetSuite.")])
    assert got["source"] == "keyword_trackers" and got["seconds"] == {"Pricing": 20.0, "Integration": 5.0}


def test_call_metrics_on_a_call_without_a_customer():
    m = call_metrics([t("r", 0, 60, "Hello? Anyone?")], {"r": REP}, duration_s=120, cfg=CFG)
    assert m["talk_ratio"] == 1.0 and m["minutes"] == 2.0
    assert m["longest_monologue"] == {"seconds": 60.0, "start_s": 0.0}
    assert m["longest_customer_story"]["seconds"] == 0.0
    assert m["interactivity"]["switches"] == 0 and m["patience"]["mean_s"] is None
    assert m["questions"]["rep_per_hour"] == 60.0


def test_colleagues_share_the_company_side_but_not_the_rep_talk_ratio():
    turns = [t("r", 0, 10), t("k", 10, 30), t("c", 30, 40)]
    m = call_metrics(turns, ROLES, cfg=CFG)
    assert m["talk_ratio"] == 0.25 and m["company_talk_ratio"] == 0.75
    assert m["longest_monologue"]["seconds"] == 30.0  # the company side's stretch, as Gong counts it
    assert m["minutes"] == pytest.approx(40 / 60, abs=1e-3)  # no duration: the span of the turns


def test_gong_stats_and_averages():
    meta = {"gong_interaction": {"interactionStats": [{"name": "Talk Ratio", "value": 0.56},
                                                      {"name": "Patience", "value": 1.29},
                                                      {"name": "Unknown", "value": 3}],
                                 "questions": {"companyCount": 9, "nonCompanyCount": 2}}}
    assert coaching.gong_stats(meta) == {"talk_ratio": 0.56, "patience_s": 1.29,
                                         "questions": {"company": 9, "customer": 2}}
    assert coaching.gong_stats({}) is None
    one = call_metrics([t("c", 0, 9), t("r", 10, 40, topic="Pricing")], ROLES, cfg=CFG)
    two = call_metrics([t("c", 0, 29, topic="Discovery"), t("r", 30, 40, topic="Pricing")], ROLES, cfg=CFG)
    avg = coaching.averages([{"metrics": one, "gong": coaching.gong_stats(meta)}, {"metrics": two, "gong": None}])
    assert avg["calls"] == 2
    assert avg["ours"]["talk_ratio"] == pytest.approx((30 / 39 + 10 / 39) / 2, abs=1e-4)
    assert avg["ours"]["patience_s"] == 1.0
    assert avg["gong"] == {"talk_ratio": 0.56, "patience_s": 1.29}  # only calls that carry Gong's stats
    assert avg["topics"]["main"] == "Pricing"


_TURNS = st.lists(st.builds(
    Turn, speaker_id=st.sampled_from(["r", "c", "x", None]),
    start_ms=st.integers(-10**6, 10**10), end_ms=st.one_of(st.none(), st.integers(-10**6, 10**10)),
    text=st.text(alphabet=st.sampled_from(list("um uh like so? Yes. okay, price! ")), max_size=60),
    topic=st.one_of(st.none(), st.sampled_from(["Pricing", "Intro"]))), max_size=25)


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def test_a_duration_under_a_millisecond_counts_as_none():
    """Found by the property test below: one question over a subnormal duration (2.2e-313 s) was
    ``inf`` questions per hour, which Flask cannot write as JSON."""
    turns = [Turn(speaker_id="r", start_ms=0, end_ms=None, text="?", topic=None)]
    metrics = call_metrics(turns, {"r": REP, "c": CUSTOMER}, 2.2250738585e-313)
    assert metrics["questions"]["rep_per_hour"] is None and metrics["minutes"] == 0
    json.dumps(metrics, allow_nan=False)
    assert call_metrics(turns, {"r": REP}, 90.0)["minutes"] == 1.5


@given(_TURNS, st.one_of(st.none(), st.floats(-1e6, 1e9, allow_nan=False)))
@settings(max_examples=300, deadline=None)
def test_any_turns_give_metrics_in_range_and_valid_json(turns, duration_s):
    """Unsorted, overlapping, reversed or open turns and any duration: no exception, no NaN or
    infinity (Flask would write invalid JSON), ratios in 0..1, interactivity 0..10, no negative time."""
    metrics = call_metrics(turns, {"r": REP, "c": CUSTOMER}, duration_s)
    assert _finite(metrics), metrics
    json.dumps(metrics, allow_nan=False)
    for ratio in (metrics["talk_ratio"], metrics["company_talk_ratio"]):
        assert ratio is None or 0 <= ratio <= 1
    score = metrics["interactivity"]["score"]
    assert score is None or 0 <= score <= 10
    assert metrics["longest_monologue"]["seconds"] >= 0 and metrics["longest_customer_story"]["seconds"] >= 0
    assert metrics["minutes"] >= 0
