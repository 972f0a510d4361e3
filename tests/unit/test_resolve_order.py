"""Resolution depends on the set of identities, never on their order: Postgres returns them in
whatever order its heap holds them, and before rows were taken in key order a second run over the
same identities grouped 6-12 of 3,840 entities differently (payready generate, scale 20)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from ingest_worker.generate import generate
from resolve_worker import evaluation, matching

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("generated")
    generate(Path(folder), 20, 11)
    return evaluation.load_generated(Path(folder))[0]


def _outcome(mappings) -> tuple[set, dict]:
    groups: dict = {}
    for m in mappings:
        groups.setdefault(m.entity_id, set()).add(m.key)
    return {frozenset(g) for g in groups.values()}, {m.key: (m.confidence, m.method) for m in mappings}


def test_shuffled_identities_resolve_to_the_same_entities(rows):
    expected = _outcome(matching.resolve(rows))
    assert len(expected[0]) > 3000
    for seed in range(3):
        shuffled = list(rows)
        random.Random(seed).shuffle(shuffled)
        got = _outcome(matching.resolve(shuffled))
        assert got[0] == expected[0], f"seed {seed}: {len(got[0] ^ expected[0])} groups differ"
        assert got[1] == expected[1]
