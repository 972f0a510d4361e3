"""Create the domain schema: sources, checkpoints, runs, interactions, entities, ops tables.

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 20:33:38.222917
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('analytics_cache',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('domain', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_log_at', 'audit_log', [sa.literal_column('at DESC')], unique=False)
    op.create_table('companies',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('primary_domain', sa.String(length=255), nullable=True),
    sa.Column('domains', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_companies_domain', 'companies', ['primary_domain'], unique=False)
    op.create_table('data_sources',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('airbyte_connection_id', sa.String(length=64), nullable=True),
    sa.Column('sync_interval_s', sa.Integer(), server_default='900', nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source')
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=128), nullable=False),
    sa.Column('record_key', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('record', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('redriven_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'stream', 'record_key', name='uq_dead_letters_record')
    )
    op.create_index('ix_dead_letters_created', 'dead_letters', [sa.literal_column('created_at DESC')], unique=False)
    op.create_table('entity_mappings',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=256), nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.UUID(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('pinned', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("entity_type IN ('person','company')", name='entity_mappings_type_valid'),
    sa.CheckConstraint('confidence >= 0 AND confidence <= 1', name='entity_mappings_confidence_range'),
    sa.PrimaryKeyConstraint('source', 'source_type', 'source_id')
    )
    op.create_index('ix_entity_mappings_entity', 'entity_mappings', ['entity_id'], unique=False)
    op.create_table('interactions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=256), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('deleted', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'source_type', 'source_id', name='uq_interactions_source_key')
    )
    op.create_index('ix_interactions_occurred', 'interactions', [sa.literal_column('occurred_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_interactions_source_occurred', 'interactions', ['source', sa.literal_column('occurred_at DESC')], unique=False)
    op.create_table('source_identities',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=256), nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('emails', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('company_name', sa.Text(), nullable=True),
    sa.Column('domains', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('company_source_type', sa.String(length=64), nullable=True),
    sa.Column('company_source_id', sa.String(length=256), nullable=True),
    sa.Column('is_internal', sa.Boolean(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('resolved', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'source_type', 'source_id')
    )
    op.create_index('ix_source_identities_unresolved', 'source_identities', ['entity_type'], unique=False, postgresql_where=sa.text('NOT resolved'))
    op.create_table('sync_runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('trigger', sa.String(length=32), server_default='api', nullable=False),
    sa.Column('full_refresh', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('phases', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending','running','succeeded','failed','cancelled')", name='sync_runs_status_valid'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sync_runs_created', 'sync_runs', [sa.literal_column('created_at DESC')], unique=False)
    op.create_table('sync_state',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=128), nullable=False),
    sa.Column('cursor_extracted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cursor_raw_id', sa.String(length=128), nullable=True),
    sa.Column('cursor_offset', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('generation_id', sa.BigInteger(), nullable=True),
    sa.Column('records_total', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'stream')
    )
    op.create_table('chunks',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('interaction_id', sa.BigInteger(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=True),
    sa.Column('end_ms', sa.BigInteger(), nullable=True),
    sa.Column('speakers', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('embedded_hash', sa.String(length=64), nullable=True),
    sa.Column('embedding_model', sa.String(length=128), nullable=True),
    sa.Column('embedded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('interaction_id', 'ordinal', name='uq_chunks_interaction_ordinal')
    )
    op.create_index('ix_chunks_pending_embed', 'chunks', ['interaction_id'], unique=False, postgresql_where=sa.text('embedded_hash IS DISTINCT FROM content_hash'))
    op.create_table('interaction_companies',
    sa.Column('interaction_id', sa.BigInteger(), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('interaction_id', 'source_type', 'source_id')
    )
    op.create_table('interaction_entities',
    sa.Column('entity_id', sa.UUID(), nullable=False),
    sa.Column('interaction_id', sa.BigInteger(), nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('entity_id', 'interaction_id')
    )
    op.create_index('ix_interaction_entities_interaction', 'interaction_entities', ['interaction_id'], unique=False)
    op.create_index('ix_interaction_entities_timeline', 'interaction_entities', ['entity_id', sa.literal_column('occurred_at DESC'), sa.literal_column('interaction_id DESC')], unique=False)
    op.create_table('interaction_turns',
    sa.Column('interaction_id', sa.BigInteger(), nullable=False),
    sa.Column('turn_key', sa.String(length=128), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=True),
    sa.Column('speaker_id', sa.String(length=128), nullable=True),
    sa.Column('speaker_name', sa.Text(), nullable=True),
    sa.Column('speaker_source_type', sa.String(length=64), nullable=True),
    sa.Column('speaker_source_id', sa.String(length=256), nullable=True),
    sa.Column('topic', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('interaction_id', 'turn_key')
    )
    op.create_table('participants',
    sa.Column('interaction_id', sa.BigInteger(), nullable=False),
    sa.Column('participant_key', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=True),
    sa.Column('source_id', sa.String(length=256), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('affiliation', sa.String(length=32), nullable=True),
    sa.Column('speaker_id', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('interaction_id', 'participant_key')
    )
    op.create_index('ix_participants_identity', 'participants', ['source_type', 'source_id'], unique=False)
    op.create_table('persons',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=True),
    sa.Column('primary_email', sa.String(length=320), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('company_id', sa.UUID(), nullable=True),
    sa.Column('is_internal', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_persons_company', 'persons', ['company_id'], unique=False)
    op.create_index('ix_persons_email', 'persons', ['primary_email'], unique=False)
    op.create_table('sync_run_sources',
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('airbyte_job_id', sa.BigInteger(), nullable=True),
    sa.Column('records_in', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('processed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('dead_lettered', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['sync_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'source')
    )
    op.create_index('uq_active_run_per_source', 'sync_run_sources', ['source'], unique=True, postgresql_where=sa.text("status IN ('pending','running')"))


def downgrade() -> None:
    op.drop_index('uq_active_run_per_source', table_name='sync_run_sources', postgresql_where=sa.text("status IN ('pending','running')"))
    op.drop_table('sync_run_sources')
    op.drop_index('ix_persons_email', table_name='persons')
    op.drop_index('ix_persons_company', table_name='persons')
    op.drop_table('persons')
    op.drop_index('ix_participants_identity', table_name='participants')
    op.drop_table('participants')
    op.drop_table('interaction_turns')
    op.drop_index('ix_interaction_entities_timeline', table_name='interaction_entities')
    op.drop_index('ix_interaction_entities_interaction', table_name='interaction_entities')
    op.drop_table('interaction_entities')
    op.drop_table('interaction_companies')
    op.drop_index('ix_chunks_pending_embed', table_name='chunks', postgresql_where=sa.text('embedded_hash IS DISTINCT FROM content_hash'))
    op.drop_table('chunks')
    op.drop_table('sync_state')
    op.drop_index('ix_sync_runs_created', table_name='sync_runs')
    op.drop_table('sync_runs')
    op.drop_index('ix_source_identities_unresolved', table_name='source_identities', postgresql_where=sa.text('NOT resolved'))
    op.drop_table('source_identities')
    op.drop_index('ix_interactions_source_occurred', table_name='interactions')
    op.drop_index('ix_interactions_occurred', table_name='interactions')
    op.drop_table('interactions')
    op.drop_index('ix_entity_mappings_entity', table_name='entity_mappings')
    op.drop_table('entity_mappings')
    op.drop_index('ix_dead_letters_created', table_name='dead_letters')
    op.drop_table('dead_letters')
    op.drop_table('data_sources')
    op.drop_index('ix_companies_domain', table_name='companies')
    op.drop_table('companies')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('api_keys')
    op.drop_table('analytics_cache')
