"""One contract, every vector store available: pgvector always (real Postgres), Weaviate when
WEAVIATE_URL points at a server. Same rows in, same answers out."""
from __future__ import annotations

import datetime as dt
import os
import uuid

import numpy as np
import pytest

from common import db
from common.settings import _replace
from embed_worker.stores import PgVectorStore, SearchFilters, VectorRow
from tests.integration.chunk_seed import add_interaction, add_person, chunk_ids

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)
MODEL = "all-MiniLM-L6-v2@int8-onnx-test"
SEED = [("gong", "call"), ("slack", "thread"), ("hubspot", "note"), ("salesforce", "note")]


def _vec(i: int) -> np.ndarray:
    v = np.full(384, 0.02, dtype=np.float32)
    v[i] = 1.0
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def seeded(domain):
    rows = []
    person = None
    for i, (source, kind) in enumerate(SEED):
        iid = add_interaction(domain, source=source, source_id=f"c{i}", kind=kind, body=f"passage number {i}",
                              occurred_at=T0 + dt.timedelta(days=i))
        entities: tuple[str, ...] = ()
        if source == "hubspot":
            person = add_person(domain, "Ada Obi", "ada@example.com", [iid])
            entities = (person,)
        [cid] = chunk_ids(domain, iid)
        rows.append(VectorRow(cid, _vec(i), MODEL, f"hash{i}", interaction_id=iid, source=source, kind=kind,
                              occurred_at=T0 + dt.timedelta(days=i), entity_ids=entities, text=f"passage number {i}"))
    return domain, rows, person


@pytest.fixture(params=["pgvector", "weaviate"])
def store(request, seeded):
    settings = seeded[0]
    if request.param == "pgvector":
        yield PgVectorStore()
        with db.transaction(settings) as conn:
            conn.exec_driver_sql("DELETE FROM chunk_vectors")
        return
    url = os.environ.get("WEAVIATE_URL")
    if not url:
        pytest.skip("WEAVIATE_URL not set: the Weaviate contract runs against a real Weaviate only")
    from embed_worker.weaviate_store import WeaviateStore

    s = _replace(settings, vector_store="weaviate", weaviate_url=url,
                 weaviate_api_key=os.environ.get("WEAVIATE_API_KEY"),
                 domain=f"c{uuid.uuid4().hex[:8]}")  # collections of their own, dropped after
    weaviate = WeaviateStore.from_settings(s)
    try:
        yield weaviate
    finally:
        weaviate.drop_collections()
        weaviate.close()


def _search(settings, store, vector, k=10, **filters):
    with db.transaction(settings) as conn:
        return store.search(conn, vector, k, SearchFilters(**filters))


def _upsert(settings, store, rows):
    with db.transaction(settings) as conn:
        return store.upsert(conn, rows)


def test_nearest_first_and_cosine_scores(seeded, store):
    settings, rows, _ = seeded
    assert _upsert(settings, store, rows) == []
    with db.transaction(settings) as conn:
        assert store.count(conn) == 4
    for i, row in enumerate(rows):
        hits = _search(settings, store, _vec(i), k=2)
        assert hits[0].chunk_id == row.chunk_id and hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert hits[1].score < 0.5


def test_reimport_changes_nothing(seeded, store):
    settings, rows, _ = seeded
    _upsert(settings, store, rows)
    before = [(h.chunk_id, round(h.score, 4)) for h in _search(settings, store, _vec(2))]
    assert _upsert(settings, store, rows) == []
    with db.transaction(settings) as conn:
        assert store.count(conn) == 4
    assert [(h.chunk_id, round(h.score, 4)) for h in _search(settings, store, _vec(2))] == before


def test_upsert_replaces_a_changed_vector(seeded, store):
    settings, rows, _ = seeded
    _upsert(settings, store, rows)
    moved = VectorRow(**{**rows[0].__dict__, "vector": _vec(100), "content_hash": "hash0-v2"})
    _upsert(settings, store, [moved])
    with db.transaction(settings) as conn:
        assert store.count(conn) == 4
    assert _search(settings, store, _vec(100), k=1)[0].chunk_id == rows[0].chunk_id
    assert _search(settings, store, _vec(0), k=1)[0].score < 0.5


def test_filters_by_source_kind_entity_time_and_model(seeded, store):
    settings, rows, person = seeded
    _upsert(settings, store, rows)
    ids = [r.chunk_id for r in rows]
    probe = _vec(0)
    assert [h.chunk_id for h in _search(settings, store, probe, sources=("slack",))] == [ids[1]]
    assert {h.chunk_id for h in _search(settings, store, probe, sources=("hubspot", "salesforce"))} == set(ids[2:])
    assert {h.chunk_id for h in _search(settings, store, probe, kinds=("note",))} == set(ids[2:])
    assert [h.chunk_id for h in _search(settings, store, probe, entity_id=person)] == [ids[2]]
    window = _search(settings, store, probe, since=T0 + dt.timedelta(days=1), until=T0 + dt.timedelta(days=3))
    assert {h.chunk_id for h in window} == {ids[1], ids[2]}  # since inclusive, until exclusive
    assert len(_search(settings, store, probe, model=MODEL)) == 4
    assert _search(settings, store, probe, model="another-model@1") == []
    assert len(_search(settings, store, probe, k=2)) == 2
