"""The domain schema as SQLAlchemy models (tables live in the domain's Postgres schema).

Tables carry no schema name: every connection sets ``search_path`` to the domain schema (see
``common.db``), so one model serves every domain and two domains never see each other's rows.
Keys follow DESIGN §4 and "Source identities": everything from a source is upserted on
``(source, source_type, source_id)``.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2; OpenAI models are asked for the same size (`dimensions`)

# Run statuses. "pending" and "running" are active: at most one active run per source.
ACTIVE_STATUSES = ("pending", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


TS = sa.DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


class DataSource(Base):
    """A source this domain syncs and, for landing=airbyte, its Airbyte connection."""

    __tablename__ = "data_sources"
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    airbyte_connection_id: Mapped[Optional[str]] = mapped_column(sa.String(64))
    sync_interval_s: Mapped[int] = mapped_column(sa.Integer, server_default="900")
    config: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    last_success_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())


class SyncState(Base):
    """Landing checkpoint per stream; advanced in the transaction that writes the rows it covers."""

    __tablename__ = "sync_state"
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    cursor_extracted_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    cursor_raw_id: Mapped[Optional[str]] = mapped_column(sa.String(128))
    # files landing: how many lines of the file are done (the file is append-only per sync)
    cursor_offset: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    generation_id: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    records_total: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())


class LandingSeen(Base):
    """Airbyte rows already delivered inside the look-back window behind the cursor.

    The reader re-reads that window to catch rows committed late with older times; these ids tell
    rows already processed apart from late ones, across runs and worker restarts. Pruned as the
    cursor advances, so it holds about one window of ids per stream.
    """

    __tablename__ = "landing_seen"
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    raw_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    extracted_at: Mapped[dt.datetime] = mapped_column(TS)
    __table_args__ = (sa.Index("ix_landing_seen_window", "source", "stream", "extracted_at"),)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(sa.String(16), server_default="pending")
    trigger: Mapped[str] = mapped_column(sa.String(32), server_default="api")
    full_refresh: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    phases: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    error: Mapped[Optional[str]] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    heartbeat_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending','running','succeeded','failed','cancelled')",
                           name="sync_runs_status_valid"),
        sa.Index("ix_sync_runs_created", sa.text("created_at DESC")),
    )


class SyncRunSource(Base):
    """One source inside a run, with its counts. The partial unique index is the run fence."""

    __tablename__ = "sync_run_sources"
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16), server_default="pending")
    airbyte_job_id: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    records_in: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    processed: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    dead_lettered: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    error: Mapped[Optional[str]] = mapped_column(sa.Text)
    __table_args__ = (
        sa.Index("uq_active_run_per_source", "source", unique=True,
                 postgresql_where=sa.text("status IN ('pending','running')")),
    )


class Interaction(Base):
    __tablename__ = "interactions"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    source_type: Mapped[str] = mapped_column(sa.String(64))
    source_id: Mapped[str] = mapped_column(sa.String(256))
    kind: Mapped[str] = mapped_column(sa.String(16))
    occurred_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    title: Mapped[Optional[str]] = mapped_column(sa.Text)
    body: Mapped[Optional[str]] = mapped_column(sa.Text)
    duration_s: Mapped[Optional[float]] = mapped_column(sa.Float)
    direction: Mapped[Optional[str]] = mapped_column(sa.String(16))
    url: Mapped[Optional[str]] = mapped_column(sa.Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=sa.text("'{}'::jsonb"))
    content_hash: Mapped[Optional[str]] = mapped_column(sa.String(64))
    deleted: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (
        sa.UniqueConstraint("source", "source_type", "source_id", name="uq_interactions_source_key"),
        sa.Index("ix_interactions_occurred", sa.text("occurred_at DESC"), sa.text("id DESC")),
        sa.Index("ix_interactions_source_occurred", "source", sa.text("occurred_at DESC")),
    )


class InteractionTurn(Base):
    """A speaker turn (Gong) or message (Slack); keyed so re-delivery replaces, never adds."""

    __tablename__ = "interaction_turns"
    interaction_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    turn_key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    start_ms: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    end_ms: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    speaker_id: Mapped[Optional[str]] = mapped_column(sa.String(128))
    speaker_name: Mapped[Optional[str]] = mapped_column(sa.Text)
    speaker_source_type: Mapped[Optional[str]] = mapped_column(sa.String(64))
    speaker_source_id: Mapped[Optional[str]] = mapped_column(sa.String(256))
    topic: Mapped[Optional[str]] = mapped_column(sa.Text)
    text: Mapped[str] = mapped_column(sa.Text)


class Participant(Base):
    __tablename__ = "participants"
    interaction_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    # identity source_id when known, else the email, else the name: stable across re-delivery
    participant_key: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    source_type: Mapped[Optional[str]] = mapped_column(sa.String(64))
    source_id: Mapped[Optional[str]] = mapped_column(sa.String(256))
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    email: Mapped[Optional[str]] = mapped_column(sa.String(320))
    affiliation: Mapped[Optional[str]] = mapped_column(sa.String(32))
    speaker_id: Mapped[Optional[str]] = mapped_column(sa.String(128))
    __table_args__ = (sa.Index("ix_participants_identity", "source_type", "source_id"),)


class InteractionCompany(Base):
    """Company identities an interaction is associated with in its source (HubSpot, Salesforce)."""

    __tablename__ = "interaction_companies"
    interaction_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    source_type: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(sa.String(256), primary_key=True)


class Chunk(Base):
    """Text cut for embedding; ``embedded_hash`` differs from ``content_hash`` until embedded."""

    __tablename__ = "chunks"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("interactions.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(sa.Integer)
    text: Mapped[str] = mapped_column(sa.Text)
    token_count: Mapped[int] = mapped_column(sa.Integer)
    start_ms: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    end_ms: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    speakers: Mapped[list[Any]] = mapped_column(server_default=sa.text("'[]'::jsonb"))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    embedded_hash: Mapped[Optional[str]] = mapped_column(sa.String(64))
    embedding_model: Mapped[Optional[str]] = mapped_column(sa.String(128))
    embedded_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    __table_args__ = (
        sa.UniqueConstraint("interaction_id", "ordinal", name="uq_chunks_interaction_ordinal"),
        # the embed phase reads exactly these rows: new or changed text
        sa.Index("ix_chunks_pending_embed", "interaction_id",
                 postgresql_where=sa.text("embedded_hash IS DISTINCT FROM content_hash")),
        # the keyword side of hybrid search (embed_worker.search): names and product codes
        sa.Index("ix_chunks_text_fts", sa.text("to_tsvector('simple'::regconfig, text)"),
                 postgresql_using="gin"),
    )


class SourceIdentity(Base):
    """Every person/company record seen in a source, as the processor described it."""

    __tablename__ = "source_identities"
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    source_type: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(sa.String(256), primary_key=True)
    entity_type: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    emails: Mapped[list[Any]] = mapped_column(server_default=sa.text("'[]'::jsonb"))
    phone: Mapped[Optional[str]] = mapped_column(sa.String(64))
    title: Mapped[Optional[str]] = mapped_column(sa.Text)
    company_name: Mapped[Optional[str]] = mapped_column(sa.Text)
    domains: Mapped[list[Any]] = mapped_column(server_default=sa.text("'[]'::jsonb"))
    company_source_type: Mapped[Optional[str]] = mapped_column(sa.String(64))
    company_source_id: Mapped[Optional[str]] = mapped_column(sa.String(256))
    is_internal: Mapped[Optional[bool]] = mapped_column(sa.Boolean)
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    resolved: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (
        sa.Index("ix_source_identities_unresolved", "entity_type",
                 postgresql_where=sa.text("NOT resolved")),
        # processors look identities up by the ids a batch mentions, without knowing their stream
        sa.Index("ix_source_identities_source_id", "source", "source_id"),
    )


class Person(Base):
    __tablename__ = "persons"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    display_name: Mapped[Optional[str]] = mapped_column(sa.Text)
    primary_email: Mapped[Optional[str]] = mapped_column(sa.String(320))
    title: Mapped[Optional[str]] = mapped_column(sa.Text)
    company_id: Mapped[Optional[uuid.UUID]] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("companies.id", ondelete="SET NULL"))
    is_internal: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (sa.Index("ix_persons_company", "company_id"),
                      sa.Index("ix_persons_email", "primary_email"))


class Company(Base):
    __tablename__ = "companies"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[Optional[str]] = mapped_column(sa.Text)
    primary_domain: Mapped[Optional[str]] = mapped_column(sa.String(255))
    domains: Mapped[list[Any]] = mapped_column(server_default=sa.text("'[]'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (sa.Index("ix_companies_domain", "primary_domain"),)


class EntityMapping(Base):
    """One row per source identity: which person/company it is, how sure, and why (contract)."""

    __tablename__ = "entity_mappings"
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    source_type: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(sa.String(256), primary_key=True)
    entity_type: Mapped[str] = mapped_column(sa.String(16))
    entity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    confidence: Mapped[float] = mapped_column(sa.Float)
    method: Mapped[str] = mapped_column(sa.String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    pinned: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())  # manual override
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (
        sa.CheckConstraint("entity_type IN ('person','company')", name="entity_mappings_type_valid"),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="entity_mappings_confidence_range"),
        sa.Index("ix_entity_mappings_entity", "entity_id"),
    )


class EntityOverride(Base):
    """A manual decision: merge (keys are one entity), split (keys apart from apart_keys), pin."""

    __tablename__ = "entity_overrides"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    action: Mapped[str] = mapped_column(sa.String(16))
    entity_type: Mapped[str] = mapped_column(sa.String(16))
    entity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    identity_keys: Mapped[list[Any]] = mapped_column(server_default=sa.text("'[]'::jsonb"))
    apart_keys: Mapped[list[Any]] = mapped_column(server_default=sa.text("'[]'::jsonb"))
    actor: Mapped[str] = mapped_column(sa.String(128), server_default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (
        sa.CheckConstraint("action IN ('merge','split','pin')", name="entity_overrides_action_valid"),
        sa.Index("ix_entity_overrides_entity", "entity_id"),
    )


class InteractionToLink(Base):
    """An interaction written since the last resolve run: its entity links are re-derived (queue)."""

    __tablename__ = "interactions_to_link"
    interaction_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)  # no foreign key: 0008


class ResolveRulesApplied(Base):
    """The matching rules the stored mappings were made by (one row): a run under other rules
    re-clusters every identity once (0009); and the manual decisions they apply, as a fingerprint
    of their ids: a routine run finding both unchanged and no identity to resolve skips matching (0010)."""

    __tablename__ = "resolve_rules_applied"
    singleton: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True, server_default=sa.true())
    rules: Mapped[str] = mapped_column(sa.Text)
    overrides: Mapped[Optional[str]] = mapped_column(sa.Text, nullable=True)
    applied_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    __table_args__ = (sa.CheckConstraint("singleton", name="resolve_rules_applied_one_row"),)


class InteractionEntity(Base):
    """Resolved persons/companies of an interaction; ``occurred_at`` copied for the timeline index."""

    __tablename__ = "interaction_entities"
    entity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    entity_type: Mapped[str] = mapped_column(sa.String(16))
    occurred_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    __table_args__ = (
        sa.Index("ix_interaction_entities_timeline", "entity_id",
                 sa.text("occurred_at DESC"), sa.text("interaction_id DESC")),
        sa.Index("ix_interaction_entities_interaction", "interaction_id"),
    )


class AnalyticsCache(Base):
    __tablename__ = "analytics_cache"
    key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
    computed_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())


class DeadLetter(Base):
    """A record that could not be processed, kept whole (cards and SSNs masked) with the reason."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[Optional[uuid.UUID]] = mapped_column(UUID(as_uuid=True))
    source: Mapped[str] = mapped_column(sa.String(32))
    stream: Mapped[str] = mapped_column(sa.String(128))
    # source record position, so a re-delivered bad record is stored once
    record_key: Mapped[str] = mapped_column(sa.String(128))
    reason: Mapped[str] = mapped_column(sa.Text)
    record: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    redriven_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    __table_args__ = (
        sa.UniqueConstraint("source", "stream", "record_key", name="uq_dead_letters_record"),
        sa.Index("ix_dead_letters_created", sa.text("created_at DESC")),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    actor: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[Optional[str]] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    __table_args__ = (sa.Index("ix_audit_log_at", sa.text("at DESC")),)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(128))
    key_hash: Mapped[str] = mapped_column(sa.String(128), unique=True)
    domain: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[dt.datetime] = mapped_column(TS, server_default=sa.func.now())
    last_used_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(TS)


def vector_table(metadata: sa.MetaData = Base.metadata) -> sa.Table:
    """``chunk_vectors`` exists only where Postgres has pgvector; it is added on demand."""
    if "chunk_vectors" in metadata.tables:
        return metadata.tables["chunk_vectors"]
    from pgvector.sqlalchemy import Vector

    return sa.Table(
        "chunk_vectors", metadata,
        sa.Column("chunk_id", UUID(as_uuid=True), sa.ForeignKey("chunks.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("embedding", Vector(EMBEDDING_DIM), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embedded_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Index("ix_chunk_vectors_hnsw", "embedding", postgresql_using="hnsw",
                 postgresql_with={"m": 16, "ef_construction": 64},
                 postgresql_ops={"embedding": "vector_cosine_ops"}),
    )
