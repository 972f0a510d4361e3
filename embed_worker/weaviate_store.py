"""The Weaviate vector store (v4 client: REST and gRPC), one collection per source and domain.

Collections are ``<Domain>SlackMessage``, ``<Domain>GongCallSegment``, ``<Domain>HubSpotNote`` and
``<Domain>SalesforceNote`` (DESIGN §6), created on first use when missing. The object id is the
chunk id (itself a uuid5 of the interaction key and position), so importing a batch again
overwrites the same objects: a re-import after a crash changes nothing. Vectors are ours
(``self_provided``): Weaviate never sees text it could embed with another model.

The request building (collection configs, data objects, filters, reading a batch result) are
plain functions, tested without a server; :class:`WeaviateStore` only sends what they build.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence
from urllib.parse import urlsplit

import numpy as np
import sqlalchemy as sa

from common.settings import Settings
from embed_worker.stores import Hit, ObjectError, SearchFilters, VectorRow, VectorStoreUnavailable

log = logging.getLogger("payready.embed.weaviate")

#: source -> collection name without the domain prefix (DESIGN §6).
COLLECTION_SUFFIXES = {
    "slack": "SlackMessage",
    "gong": "GongCallSegment",
    "hubspot": "HubSpotNote",
    "salesforce": "SalesforceNote",
}

#: (property, weaviate data type name, filterable); text is searchable for Weaviate's own BM25.
PROPERTIES = (
    ("chunk_id", "UUID"),
    ("interaction_id", "INT"),
    ("source", "TEXT"),
    ("kind", "TEXT"),
    ("occurred_at", "DATE"),
    ("entity_ids", "TEXT_ARRAY"),
    ("model", "TEXT"),
    ("content_hash", "TEXT"),
    ("text", "TEXT"),
)


def collection_name(prefix: str, source: str) -> str:
    try:
        return prefix + COLLECTION_SUFFIXES[source]
    except KeyError:
        raise ValueError(f"no Weaviate collection for source {source!r}") from None


def collection_config(name: str) -> dict[str, Any]:
    """Keyword arguments for ``client.collections.create``."""
    from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

    props = []
    for prop, type_name in PROPERTIES:
        extra: dict[str, Any] = {}
        if type_name in ("TEXT", "TEXT_ARRAY") and prop != "text":
            # ids, kinds and hashes are matched whole, never split into words
            extra["tokenization"] = Tokenization.FIELD
        if prop == "occurred_at":
            extra["index_range_filters"] = True  # since/until without scanning every object
        props.append(Property(name=prop, data_type=getattr(DataType, type_name),
                              skip_vectorization=True, **extra))
    return {
        "name": name,
        "properties": props,
        "vector_config": Configure.Vectors.self_provided(
            vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)),
    }


def _rfc3339(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def data_objects(rows: Sequence[VectorRow]) -> list[Any]:
    """One ``DataObject`` per row, its uuid the chunk id, its vector a plain float list."""
    from weaviate.classes.data import DataObject

    out = []
    for r in rows:
        props = {
            "chunk_id": str(r.chunk_id),
            "interaction_id": r.interaction_id,
            "source": r.source,
            "kind": r.kind,
            "occurred_at": _rfc3339(r.occurred_at),
            "entity_ids": list(r.entity_ids),
            "model": r.model,
            "content_hash": r.content_hash,
            "text": r.text,
        }
        out.append(DataObject(properties={k: v for k, v in props.items() if v is not None},
                              uuid=uuid.UUID(str(r.chunk_id)),
                              vector=np.asarray(r.vector, dtype=np.float32).tolist()))
    return out


def build_filter(filters: SearchFilters) -> Any:
    """The filters as one weaviate ``Filter`` (None when there is nothing to filter on).

    ``sources`` is not here: it picks collections, one per source.
    """
    from weaviate.classes.query import Filter

    parts = []
    if filters.kinds:
        parts.append(Filter.by_property("kind").contains_any(list(filters.kinds)))
    if filters.entity_id:
        parts.append(Filter.by_property("entity_ids").contains_any([str(filters.entity_id)]))
    if filters.since:
        parts.append(Filter.by_property("occurred_at").greater_or_equal(_rfc3339(filters.since)))
    if filters.until:
        parts.append(Filter.by_property("occurred_at").less_than(_rfc3339(filters.until)))
    if filters.model:
        parts.append(Filter.by_property("model").equal(filters.model))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Filter.all_of(parts)


def batch_errors(result: Any, rows: Sequence[VectorRow]) -> list[ObjectError]:
    """Per-object errors of an ``insert_many`` result, keyed back to chunk ids by position."""
    errors = []
    for index, error in sorted((getattr(result, "errors", None) or {}).items()):
        chunk_id = str(rows[index].chunk_id) if 0 <= index < len(rows) else f"#{index}"
        errors.append(ObjectError(chunk_id, str(getattr(error, "message", error))))
    return errors


def collections_for(prefix: str, sources: Optional[Iterable[str]]) -> list[str]:
    return [collection_name(prefix, s) for s in (sources or COLLECTION_SUFFIXES)]


@dataclass
class WeaviateStore:
    """Writes before the Postgres checkpoint commits; ``conn`` is the embed phase's transaction."""

    client: Any
    prefix: str
    url: str = ""
    name: str = "weaviate"

    def __post_init__(self) -> None:
        self._ensured: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> "WeaviateStore":
        if not settings.weaviate_url:
            raise VectorStoreUnavailable("PAYREADY_VECTOR_STORE=weaviate but WEAVIATE_URL is not set")
        return cls(client=connect(settings), prefix=settings.collection_prefix, url=settings.weaviate_url)

    def close(self) -> None:
        self.client.close()

    def check(self, conn: sa.engine.Connection | None = None) -> None:
        try:
            ready = self.client.is_ready()
        except Exception as exc:  # noqa: BLE001 - any transport failure means "not there"
            raise VectorStoreUnavailable(f"Weaviate at {self.url} is not reachable: {exc}") from exc
        if not ready:
            raise VectorStoreUnavailable(f"Weaviate at {self.url} is not ready")

    def ensure_collections(self, sources: Iterable[str] = COLLECTION_SUFFIXES) -> None:
        """Create the missing collections; safe when another worker creates them concurrently."""
        for name in collections_for(self.prefix, sources):
            if name in self._ensured:
                continue
            if not self.client.collections.exists(name):
                try:
                    self.client.collections.create(**collection_config(name))
                except Exception:
                    if not self.client.collections.exists(name):  # lost a race: fine; else re-raise
                        raise
            self._ensured.add(name)

    def upsert(self, conn: sa.engine.Connection | None, rows: Sequence[VectorRow]) -> list[ObjectError]:
        errors: list[ObjectError] = []
        by_source: dict[str, list[VectorRow]] = {}
        for row in rows:
            if row.source not in COLLECTION_SUFFIXES:
                errors.append(ObjectError(str(row.chunk_id), f"no collection for source {row.source!r}"))
                continue
            by_source.setdefault(row.source, []).append(row)
        for source, group in by_source.items():
            self.ensure_collections([source])
            collection = self.client.collections.get(collection_name(self.prefix, source))
            result = collection.data.insert_many(data_objects(group))
            errors.extend(batch_errors(result, group))
        for error in errors:
            log.warning("weaviate refused chunk %s: %s", error.chunk_id, error.message)
        return errors

    def search(self, conn: sa.engine.Connection | None, vector: np.ndarray, k: int,
               filters: SearchFilters = SearchFilters()) -> list[Hit]:
        from weaviate.classes.query import MetadataQuery

        where = build_filter(filters)
        hits: list[Hit] = []
        for name in collections_for(self.prefix, filters.sources):
            if not self.client.collections.exists(name):
                continue
            response = self.client.collections.get(name).query.near_vector(
                near_vector=np.asarray(vector, dtype=np.float32).tolist(), limit=int(k), filters=where,
                return_metadata=MetadataQuery(distance=True), return_properties=["chunk_id"])
            for obj in response.objects:
                hits.append(Hit(str(obj.uuid), 1.0 - float(obj.metadata.distance)))
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        return hits[:k]

    def count(self, conn: sa.engine.Connection | None = None) -> int:
        total = 0
        for name in collections_for(self.prefix, None):
            if self.client.collections.exists(name):
                total += self.client.collections.get(name).aggregate.over_all(total_count=True).total_count
        return total

    def delete(self, chunk_ids: Sequence[str], sources: Optional[Iterable[str]] = None) -> None:
        from weaviate.classes.query import Filter

        ids = [uuid.UUID(str(c)) for c in chunk_ids]
        for name in collections_for(self.prefix, sources):
            if ids and self.client.collections.exists(name):
                self.client.collections.get(name).data.delete_many(where=Filter.by_id().contains_any(ids))

    def drop_collections(self) -> None:
        for name in collections_for(self.prefix, None):
            self.client.collections.delete(name)
        self._ensured.clear()


def connection_params(settings: Settings) -> dict[str, Any]:
    """Arguments for ``weaviate.connect_to_custom`` from WEAVIATE_URL (+ gRPC port, API key)."""
    url = urlsplit(settings.weaviate_url or "")
    secure = url.scheme == "https"
    params: dict[str, Any] = {
        "http_host": url.hostname, "http_port": url.port or (443 if secure else 80), "http_secure": secure,
        "grpc_host": url.hostname, "grpc_port": settings.weaviate_grpc_port, "grpc_secure": secure,
    }
    if settings.weaviate_api_key:
        from weaviate.classes.init import Auth

        params["auth_credentials"] = Auth.api_key(settings.weaviate_api_key)
    return params


def connect(settings: Settings) -> Any:
    import weaviate

    try:
        return weaviate.connect_to_custom(**connection_params(settings))
    except Exception as exc:  # noqa: BLE001 - the client raises several transport types
        raise VectorStoreUnavailable(f"Weaviate at {settings.weaviate_url} is not reachable: {exc}") from exc


_shared: dict[tuple, WeaviateStore] = {}


def shared_store(settings: Settings) -> WeaviateStore:
    """One client per process and server: a v4 connection (REST + gRPC) costs a round of handshakes."""
    key = (settings.weaviate_url, settings.weaviate_grpc_port, settings.weaviate_api_key, settings.collection_prefix)
    store = _shared.get(key)
    if store is None:
        store = _shared[key] = WeaviateStore.from_settings(settings)
    return store
