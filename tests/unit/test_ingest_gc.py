"""process_source collects cyclic garbage between batches instead of letting the automatic
collector walk each batch's live records dozens of times (ingest_worker.pipeline)."""
from __future__ import annotations

import gc
import weakref

import pytest

from ingest_worker import pipeline


class _Node:
    pass


def test_automatic_collection_is_off_inside_and_restored_after():
    assert gc.isenabled()
    with pipeline._gc_between_batches():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with pipeline._gc_between_batches():
            raise RuntimeError("a failing batch")
    assert gc.isenabled(), "restored when the run fails"
    gc.disable()
    try:
        with pipeline._gc_between_batches():
            pass
        assert not gc.isenabled(), "a caller that had it off keeps it off"
    finally:
        gc.enable()


def test_cycles_made_by_batches_are_collected_every_few_batches(monkeypatch):
    monkeypatch.setattr(pipeline, "_batches_since_collection", 0)
    with pipeline._gc_between_batches():
        node = _Node()
        node.self = node  # a cycle: reference counting alone never frees it
        alive = weakref.ref(node)
        del node
        for _ in range(pipeline._BATCHES_PER_COLLECTION - 1):
            pipeline._collect_batch_garbage()
        assert alive() is not None, "no automatic collection inside"
        pipeline._collect_batch_garbage()
        assert alive() is None
