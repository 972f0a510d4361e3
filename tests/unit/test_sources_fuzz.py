"""Every source processor, fed real generated records with random damage (a field dropped, or
its value replaced by any JSON value, at any depth) mixed with whole ones, accounts for each record
as processed or dead-lettered and never raises; only damaged records are dead-lettered, kept whole
with a reason: a malformed record must not take its batch, or its neighbours, down."""
from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ingest_worker.generate import generate
from ingest_worker.sources import PROCESSORS, Context, DictDirectory, process

pytestmark = pytest.mark.unit

_SAMPLES_PER_STREAM = 12


def _samples() -> dict[tuple[str, str], list[dict]]:
    with tempfile.TemporaryDirectory(prefix="payready-fuzz-") as tmp:
        generate(Path(tmp), 1, 3)
        out = {}
        for source, module in PROCESSORS.items():
            for stream in module.STREAMS:
                path = Path(tmp) / source / f"{stream}.jsonl"
                if not path.exists():
                    continue
                messages = (json.loads(line) for line in path.read_text().splitlines())
                records = [m["record"]["data"] for m in messages if m.get("type") == "RECORD"]
                # the sample holds a few bad records on purpose (the demo's dead letters): not here
                out[(source, stream)] = [r for r in records if _accepted(source, stream, r)][:_SAMPLES_PER_STREAM]
    return out


def _accepted(source: str, stream: str, record: dict) -> bool:
    return not process(source, stream, [record], Context(directory=DictDirectory())).dead


SAMPLES = _samples()
STREAMS = sorted(SAMPLES)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30) | st.sampled_from(["", " ", "N/A", "2026-13-45", "<b>x</b>", "\x00", "1e309", "-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def _damage(record: dict, data: st.DataObject) -> dict:
    """One random change somewhere in a copy of ``record``."""
    record = copy.deepcopy(record)
    node = record
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return record
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and data.draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and data.draw(st.booleans()):
            del node[key]
        else:
            node[key] = data.draw(_JSON)
        return record


@pytest.mark.parametrize("source, stream", STREAMS, ids=[f"{s}/{t}" for s, t in STREAMS])
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_records_are_processed_or_dead_lettered_never_raised(source, stream, data):
    samples = SAMPLES[(source, stream)]
    damaged = [_damage(r, data) for r in data.draw(st.lists(st.sampled_from(samples), min_size=1, max_size=4))]
    whole = data.draw(st.lists(st.sampled_from(samples), max_size=3))
    batch = data.draw(st.permutations(damaged + whole))
    outcome = process(source, stream, batch, Context(directory=DictDirectory()))
    assert outcome.processed + len(outcome.dead) == len(batch)
    # only damaged records are dead-lettered, each kept whole with a reason: the rest go on
    assert len(outcome.dead) <= len(damaged)
    assert all(d.reason and d.stream == stream and d.record in damaged for d in outcome.dead)
