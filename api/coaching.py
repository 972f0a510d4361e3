"""Coaching metrics from Gong speaker turns, per call and averaged per rep.

The definitions are ours, following shared/COACHING.md §4, and are written out in
docs/coaching.md; every threshold is a field of :class:`CoachingConfig`. The metric functions are
pure (turns in, numbers out); :func:`report` loads turns and parties from Postgres and shows Gong's
own interaction stats (when the call carries them) beside ours.

A turn here is one stored Gong monologue segment: its speaking time is ``end_ms - start_ms``
(sentence timings inside a segment are not kept at ingest, so short pauses between the sentences
of one segment count as speech).
"""
from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional, Sequence

REP, CUSTOMER, OTHER = "rep", "customer", "other"

#: COACHING.md: "um, uh, like, you know, sort of, basically, ..."; longest phrases first.
FILLER_WORDS = ("you know", "sort of", "kind of", "i mean", "um", "umm", "uh", "uhh", "erm", "er", "like",
                "basically", "actually", "literally")
_FILLER_RE = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in FILLER_WORDS) + r")\b", re.I)
_WORD_RE = re.compile(r"[\w']+")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_INTERROGATIVE = re.compile(
    r"^(?:who|whom|whose|what|when|where|why|how|which|is|are|am|was|were|do|does|did|can|could|will|would|"
    r"shall|should|may|might|have|has|had|isn't|aren't|don't|doesn't|didn't|won't|wouldn't|can't|couldn't)\b",
    re.I)
#: Keyword trackers for calls whose segments carry no ``topic`` (COACHING.md: fall back to trackers).
TOPIC_TRACKERS = {
    "Pricing": ("price", "pricing", "cost", "discount", "budget", "quote", "contract"),
    "Integration": ("integration", "integrate", "sync", "api", "quickbooks", "netsuite", "yardi", "erp"),
    "Next Steps": ("next step", "follow up", "follow-up", "schedule", "next call", "next week"),
    "Security": ("security", "soc 2", "soc2", "compliance", "audit"),
}


@dataclass(frozen=True)
class CoachingConfig:
    # a non-rep turn up to this long does not break a monologue (back-channels, "mm-hm")
    interruption_tolerance_ms: int = 3000
    # silence longer than this ends a monologue or story: a gap in speech is not speech
    silence_tolerance_ms: int = 5000
    # switches per minute that map to 10 on the 0-10 interactivity scale
    interactivity_cap_per_min: float = 6.0
    # filler rate above this multiple of the corpus median is flagged
    filler_flag_factor: float = 2.0
    # and only when at least this many fillers per 100 words (a median of 0 flags nothing tiny)
    filler_flag_min_rate: float = 1.0


@dataclass(frozen=True)
class Turn:
    speaker_id: Optional[str]
    start_ms: int
    end_ms: Optional[int]
    text: str = ""
    topic: Optional[str] = None

    @property
    def duration_ms(self) -> int:
        return max(0, (self.end_ms if self.end_ms is not None else self.start_ms) - self.start_ms)

    @property
    def stop_ms(self) -> int:
        return self.start_ms + self.duration_ms


@dataclass
class Stretch:
    seconds: float = 0.0
    start_s: Optional[float] = None


def _role(turn: Turn, roles: dict[str, str]) -> str:
    return roles.get(turn.speaker_id or "", OTHER)


def talk_ratio(turns: Sequence[Turn], speakers: set[str]) -> Optional[float]:
    """Speaking time of ``speakers`` / all speaking time; silence is not in the denominator."""
    total = sum(t.duration_ms for t in turns)
    if total == 0:
        return None
    return round(sum(t.duration_ms for t in turns if t.speaker_id in speakers) / total, 4)


def longest_stretch(turns: Sequence[Turn], roles: dict[str, str], side: str, cfg: CoachingConfig) -> Stretch:
    """Longest run of ``side`` speech not broken by another turn over the interruption tolerance
    nor by silence over the silence tolerance; seconds from its first start to its last end."""
    best = Stretch()
    start: Optional[int] = None
    end = 0
    for turn in sorted(turns, key=lambda t: t.start_ms):
        mine = _role(turn, roles) == side
        if mine:
            if start is not None and turn.start_ms - end > cfg.silence_tolerance_ms:
                start = None
            if start is None:
                start, end = turn.start_ms, turn.stop_ms
            else:
                end = max(end, turn.stop_ms)
        elif start is not None and (turn.duration_ms > cfg.interruption_tolerance_ms
                                    or turn.start_ms - end > cfg.silence_tolerance_ms):
            start = None
        if start is not None and (end - start) / 1000 > best.seconds:
            best = Stretch(round((end - start) / 1000, 3), round(start / 1000, 3))
    return best


def side_switches(turns: Sequence[Turn], roles: dict[str, str]) -> int:
    """Changes between the company side (rep and colleagues) and the customer side, in time order."""
    switches, last = 0, None
    for turn in sorted(turns, key=lambda t: t.start_ms):
        role = _role(turn, roles)
        side = CUSTOMER if role == CUSTOMER else ("company" if role in (REP, "colleague") else None)
        if side is None:
            continue
        if last is not None and side != last:
            switches += 1
        last = side
    return switches


def interactivity(turns: Sequence[Turn], roles: dict[str, str], minutes: float,
                  cfg: CoachingConfig) -> dict:
    if minutes <= 0:
        return {"score": None, "switches_per_min": None, "switches": 0}
    switches = side_switches(turns, roles)
    rate = switches / minutes
    return {"score": round(min(10.0, 10.0 * rate / cfg.interactivity_cap_per_min), 2),
            "switches_per_min": round(rate, 3), "switches": switches}


def is_question(sentence: str) -> bool:
    s = sentence.strip()
    return bool(s) and (s.endswith("?") or bool(_INTERROGATIVE.match(s)))


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_RE.split(text.strip()) if s.strip()]


def patience(turns: Sequence[Turn], roles: dict[str, str], rep_side: str = REP) -> dict:
    """Gaps (s) between the end of a customer turn and the start of the rep turn after it.

    Overlaps (the rep starts before the customer stops) are skipped. ``after_question`` is the same
    over customer turns that ended with a question.
    """
    gaps: list[float] = []
    after_question: list[float] = []
    ordered = sorted(turns, key=lambda t: t.start_ms)
    for prev, turn in zip(ordered, ordered[1:]):
        if _role(prev, roles) != CUSTOMER or _role(turn, roles) != rep_side:
            continue
        gap = (turn.start_ms - prev.stop_ms) / 1000
        if gap < 0:
            continue
        gaps.append(gap)
        said = sentences(prev.text)
        if said and is_question(said[-1]):
            after_question.append(gap)

    def summary(values: list[float]) -> dict:
        if not values:
            return {"mean_s": None, "median_s": None, "n": 0}
        return {"mean_s": round(statistics.fmean(values), 3), "median_s": round(statistics.median(values), 3),
                "n": len(values)}

    return summary(gaps) | {"after_question": summary(after_question)}


def questions(turns: Sequence[Turn], roles: dict[str, str], hours: float) -> dict:
    counts = {REP: 0, "company": 0, CUSTOMER: 0}
    for turn in turns:
        n = sum(1 for s in sentences(turn.text) if is_question(s))
        role = _role(turn, roles)
        if role == REP:
            counts[REP] += n
        if role in (REP, "colleague"):
            counts["company"] += n
        elif role == CUSTOMER:
            counts[CUSTOMER] += n
    rate = round(counts[REP] / hours, 2) if hours > 0 else None
    return {"rep_per_hour": rate, "rep": counts[REP], "company": counts["company"], "customer": counts[CUSTOMER]}


def filler_words(turns: Sequence[Turn], speakers: set[str]) -> dict:
    words = fillers = 0
    found: dict[str, int] = {}
    for turn in turns:
        if turn.speaker_id not in speakers:
            continue
        words += len(_WORD_RE.findall(turn.text))
        for m in _FILLER_RE.finditer(turn.text):
            item = m.group(0).lower()
            found[item] = found.get(item, 0) + 1
            fillers += 1
    return {"per_100_words": round(100 * fillers / words, 3) if words else None, "count": fillers,
            "words": words, "items": dict(sorted(found.items(), key=lambda kv: -kv[1]))}


def topics(turns: Sequence[Turn]) -> dict:
    """Seconds per Gong segment topic; keyword trackers when no segment has one."""
    seconds: dict[str, float] = {}
    source = "gong_segments"
    if any(t.topic for t in turns):
        for turn in turns:
            if turn.topic:
                seconds[turn.topic] = seconds.get(turn.topic, 0.0) + turn.duration_ms / 1000
    else:
        source = "keyword_trackers"
        for turn in turns:
            low = turn.text.lower()
            for name, words in TOPIC_TRACKERS.items():
                if any(w in low for w in words):
                    seconds[name] = seconds.get(name, 0.0) + turn.duration_ms / 1000
    ranked = dict(sorted(((k, round(v, 3)) for k, v in seconds.items()), key=lambda kv: (-kv[1], kv[0])))
    return {"seconds": ranked, "main": next(iter(ranked), None), "source": source}


def call_minutes(turns: Sequence[Turn], duration_s: Optional[float]) -> float:
    # under a millisecond is no duration (the turns' span is counted in whole ms): a per-hour rate
    # over a subnormal duration overflowed to infinity, which JSON cannot carry
    if duration_s and duration_s >= 0.001:
        return duration_s / 60
    if not turns:
        return 0.0
    return (max(t.stop_ms for t in turns) - min(t.start_ms for t in turns)) / 60000


def call_metrics(turns: Sequence[Turn], roles: dict[str, str], duration_s: Optional[float] = None,
                 cfg: CoachingConfig = CoachingConfig()) -> dict:
    """Every metric of one call. ``roles`` maps speaker id to rep (the coached rep), colleague
    (other company-side people), customer; speakers not in it count as other."""
    reps = {s for s, r in roles.items() if r == REP}
    company = {s for s, r in roles.items() if r in (REP, "colleague")}
    minutes = call_minutes(turns, duration_s)
    company_roles = {s: (REP if r == "colleague" else r) for s, r in roles.items()}
    monologue = longest_stretch(turns, company_roles, REP, cfg)
    story = longest_stretch(turns, company_roles, CUSTOMER, cfg)
    return {
        "minutes": round(minutes, 3),
        "talk_ratio": talk_ratio(turns, reps),
        "company_talk_ratio": talk_ratio(turns, company),
        "longest_monologue": asdict(monologue),
        "longest_customer_story": asdict(story),
        "interactivity": interactivity(turns, roles, minutes, cfg),
        "patience": patience(turns, company_roles),
        "questions": questions(turns, roles, minutes / 60),
        "filler_words": filler_words(turns, reps),
        "topics": topics(turns),
    }


def flag_fillers(calls: list[dict], cfg: CoachingConfig = CoachingConfig()) -> Optional[float]:
    """Mark each call's filler rate against the corpus median; returns the median."""
    rates = [c["metrics"]["filler_words"]["per_100_words"] for c in calls
             if c["metrics"]["filler_words"]["per_100_words"] is not None]
    baseline = statistics.median(rates) if rates else None
    for call in calls:
        fw = call["metrics"]["filler_words"]
        rate = fw["per_100_words"]
        fw["baseline_per_100_words"] = baseline
        fw["flagged"] = bool(rate is not None and baseline is not None and rate >= cfg.filler_flag_min_rate
                             and rate > cfg.filler_flag_factor * baseline)
    return baseline


# Gong's `interaction.interactionStats` names → our keys, so the two sit side by side.
GONG_STATS = {"Talk Ratio": "talk_ratio", "Longest Monologue": "longest_monologue_s",
              "Longest Customer Story": "longest_customer_story_s", "Interactivity": "interactivity",
              "Patience": "patience_s", "Question Rate": "question_rate"}


def gong_stats(metadata: Optional[dict]) -> Optional[dict]:
    """Gong's own interaction stats of a call (extensiveCalls ``interaction``), or None."""
    interaction = (metadata or {}).get("gong_interaction")
    if not isinstance(interaction, dict):
        return None
    out: dict = {}
    for stat in interaction.get("interactionStats") or []:
        if isinstance(stat, dict) and stat.get("name") in GONG_STATS and isinstance(stat.get("value"), (int, float)):
            out[GONG_STATS[stat["name"]]] = stat["value"]
    q = interaction.get("questions")
    if isinstance(q, dict):
        out["questions"] = {"company": q.get("companyCount"), "customer": q.get("nonCompanyCount")}
    return out or None


# flat numbers averaged per rep: (label, path into call metrics)
AVERAGED = {
    "talk_ratio": ("talk_ratio",),
    "company_talk_ratio": ("company_talk_ratio",),
    "longest_monologue_s": ("longest_monologue", "seconds"),
    "longest_customer_story_s": ("longest_customer_story", "seconds"),
    "interactivity": ("interactivity", "score"),
    "interactivity_switches_per_min": ("interactivity", "switches_per_min"),
    "patience_s": ("patience", "mean_s"),
    "question_rate_per_hour": ("questions", "rep_per_hour"),
    "filler_per_100_words": ("filler_words", "per_100_words"),
}


def _dig(value: dict, path: tuple) -> Optional[float]:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def averages(calls: Iterable[dict]) -> dict:
    """Per-call values averaged over the rep's calls (Gong's method); calls without a value skip."""
    calls = list(calls)
    ours = {}
    for label, path in AVERAGED.items():
        values = [v for c in calls if (v := _dig(c["metrics"], path)) is not None]
        ours[label] = round(statistics.fmean(values), 4) if values else None
    gong: dict = {}
    for key in GONG_STATS.values():
        values = [c["gong"][key] for c in calls if c.get("gong") and isinstance(c["gong"].get(key), (int, float))]
        if values:
            gong[key] = round(statistics.fmean(values), 4)
    topic_seconds: dict[str, float] = {}
    for c in calls:
        for name, secs in c["metrics"]["topics"]["seconds"].items():
            topic_seconds[name] = topic_seconds.get(name, 0.0) + secs
    ranked = dict(sorted(((k, round(v, 3)) for k, v in topic_seconds.items()), key=lambda kv: (-kv[1], kv[0])))
    return {"calls": len(calls), "ours": ours, "gong": gong or None,
            "topics": {"seconds": ranked, "main": next(iter(ranked), None)},
            "filler_flagged_calls": sum(1 for c in calls if c["metrics"]["filler_words"].get("flagged"))}


@dataclass
class CallData:
    """One call as loaded: its turns and who each speaker is."""

    interaction_id: int
    source_id: str
    title: Optional[str]
    occurred_at: Optional[dt.datetime]
    url: Optional[str]
    duration_s: Optional[float]
    metadata: dict
    turns: list[Turn]
    # speaker id → {"entity_id", "name", "internal": bool}
    speakers: dict[str, dict] = field(default_factory=dict)
