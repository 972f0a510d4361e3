"""The Weaviate adapter's request building, without a server: collection configs, object ids and
properties, filters as weaviate Filter objects, per-object errors read from a batch result."""
import datetime as dt
import uuid

import numpy as np
import pytest
from weaviate.classes.config import DataType, Tokenization, VectorDistances
from weaviate.collections.classes.batch import BatchObject, BatchObjectReturn, ErrorObject
from weaviate.collections.classes.filters import _FilterAnd, _FilterValue, _Operator

from common import settings as settings_mod
from common.chunking import chunk_id_for
from embed_worker import stores
from embed_worker.stores import SearchFilters, VectorRow, VectorStoreUnavailable
from embed_worker.weaviate_store import (
    WeaviateStore,
    batch_errors,
    build_filter,
    collection_config,
    collection_name,
    collections_for,
    connection_params,
    data_objects,
)

pytestmark = pytest.mark.unit

T = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.timezone.utc)


def _row(i: int, source: str = "gong") -> VectorRow:
    vec = np.zeros(384, dtype=np.float32)
    vec[i] = 1.0
    return VectorRow(chunk_id_for(f"{source}:extensiveCalls:{i}", 0), vec, "all-MiniLM-L6-v2@int8-onnx-x", f"h{i}",
                     interaction_id=i, source=source, kind="call", occurred_at=T, entity_ids=("e1", "e2"),
                     text=f"[00:01] Ana: chunk {i}")


def test_collection_names_follow_the_design():
    prefix = settings_mod.load({"PAYREADY_DOMAIN": "pay_ready"}).collection_prefix
    assert [collection_name(prefix, s) for s in ("slack", "gong", "hubspot", "salesforce")] == [
        "PayReadySlackMessage", "PayReadyGongCallSegment", "PayReadyHubSpotNote", "PayReadySalesforceNote"]
    assert collections_for("Acme", ["hubspot"]) == ["AcmeHubSpotNote"]
    assert len(collections_for("Acme", None)) == 4
    with pytest.raises(ValueError, match="'zoom'"):
        collection_name("Acme", "zoom")


def test_collection_config_brings_its_own_cosine_vectors():
    cfg = collection_config("PayReadyGongCallSegment")
    assert cfg["name"] == "PayReadyGongCallSegment"
    vc = cfg["vector_config"]
    assert vc.vectorizer.vectorizer.value == "none"  # self-provided: Weaviate never embeds text itself
    assert vc.vectorIndexConfig.distance == VectorDistances.COSINE
    props = {p.name: p for p in cfg["properties"]}
    assert set(props) == {"chunk_id", "interaction_id", "source", "kind", "occurred_at", "entity_ids", "model",
                          "content_hash", "text"}
    assert props["chunk_id"].dataType == DataType.UUID and props["occurred_at"].dataType == DataType.DATE
    assert props["entity_ids"].dataType == DataType.TEXT_ARRAY
    assert props["entity_ids"].tokenization == Tokenization.FIELD  # ids match whole
    assert props["text"].tokenization is None
    assert props["occurred_at"].indexRangeFilters is True


def test_data_objects_use_chunk_ids_and_carry_filter_properties():
    rows = [_row(3), _row(7)]
    objs = data_objects(rows)
    assert [o.uuid for o in objs] == [uuid.UUID(r.chunk_id) for r in rows]
    assert data_objects(rows)[0].uuid == objs[0].uuid  # deterministic: a re-import overwrites
    assert objs[0].vector == rows[0].vector.tolist() and len(objs[0].vector) == 384
    assert objs[1].properties == {
        "chunk_id": rows[1].chunk_id, "interaction_id": 7, "source": "gong", "kind": "call", "occurred_at": T,
        "entity_ids": ["e1", "e2"], "model": "all-MiniLM-L6-v2@int8-onnx-x", "content_hash": "h7",
        "text": "[00:01] Ana: chunk 7"}
    naive = _row(1)
    naive.occurred_at = dt.datetime(2026, 1, 1)
    naive.kind = None
    props = data_objects([naive])[0].properties
    assert props["occurred_at"].tzinfo == dt.timezone.utc and "kind" not in props


def test_filters_translate_to_weaviate_filters():
    assert build_filter(SearchFilters()) is None
    single = build_filter(SearchFilters(kinds=("call", "meeting")))
    assert isinstance(single, _FilterValue)
    assert (single.target, single.operator, single.value) == ("kind", _Operator.CONTAINS_ANY, ["call", "meeting"])
    until = T + dt.timedelta(days=1)
    combined = build_filter(SearchFilters(sources=("gong",), kinds=("call",), entity_id="e9", since=T,
                                          until=until, model="m@1"))
    assert isinstance(combined, _FilterAnd)
    got = [(f.target, f.operator, f.value) for f in combined.filters]
    assert got == [("kind", _Operator.CONTAINS_ANY, ["call"]),
                   ("entity_ids", _Operator.CONTAINS_ANY, ["e9"]),
                   ("occurred_at", _Operator.GREATER_THAN_EQUAL, T),
                   ("occurred_at", _Operator.LESS_THAN, until),
                   ("model", _Operator.EQUAL, "m@1")]


def test_batch_errors_name_the_refused_chunks():
    rows = [_row(1), _row(2), _row(3)]
    failed = BatchObject(collection="X", properties={}, uuid=rows[1].chunk_id, index=1)
    result = BatchObjectReturn(errors={1: ErrorObject(message="vector lengths don't match", object_=failed)},
                               has_errors=True)
    errors = batch_errors(result, rows)
    assert [(e.chunk_id, e.message) for e in errors] == [(rows[1].chunk_id, "vector lengths don't match")]
    assert batch_errors(BatchObjectReturn(), rows) == []


def test_connection_params_from_settings():
    s = settings_mod.load({"PAYREADY_VECTOR_STORE": "weaviate", "WEAVIATE_URL": "https://vec.example.com",
                           "WEAVIATE_API_KEY": "k-1", "PAYREADY_WEAVIATE_GRPC_PORT": "443"})
    params = connection_params(s)
    assert (params["http_host"], params["http_port"], params["http_secure"]) == ("vec.example.com", 443, True)
    assert (params["grpc_host"], params["grpc_port"], params["grpc_secure"]) == ("vec.example.com", 443, True)
    assert params["auth_credentials"].api_key == "k-1"
    local = connection_params(settings_mod.load({"WEAVIATE_URL": "http://127.0.0.1:8080"}))
    assert (local["http_port"], local["grpc_port"], local["http_secure"]) == (8080, 50051, False)
    assert "auth_credentials" not in local


def test_store_selection_and_clear_errors():
    assert isinstance(stores.build_store("pgvector"), stores.PgVectorStore)
    with pytest.raises(VectorStoreUnavailable, match="'qdrant'"):
        stores.build_store("qdrant")
    with pytest.raises(settings_mod.ConfigError, match="WEAVIATE_URL"):
        settings_mod.load({"PAYREADY_VECTOR_STORE": "weaviate"})
    with pytest.raises(settings_mod.ConfigError, match="PAYREADY_WEAVIATE_GRPC_PORT"):
        settings_mod.load({"PAYREADY_WEAVIATE_GRPC_PORT": "http"})
    with pytest.raises(VectorStoreUnavailable, match="WEAVIATE_URL"):
        WeaviateStore.from_settings(settings_mod.load({}))
