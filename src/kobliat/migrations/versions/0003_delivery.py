"""Event delivery: sinks (NATS, HTTP subscriptions), per-sink per-aggregate delivery heads,
the feed-order key per aggregate, and the indexes the relay and pruning read by.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

POSTGRES = """
CREATE TABLE sinks (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    kind TEXT NOT NULL CHECK (kind IN ('nats','http')),
    url TEXT,
    event_types JSONB,
    secret TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE delivery_heads (
    sink_id UUID NOT NULL REFERENCES sinks(id) ON DELETE CASCADE,
    aggregate_id TEXT NOT NULL,
    delivered_sequence BIGINT NOT NULL,
    target_sequence BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready','dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    leased_until TIMESTAMPTZ,
    lease_owner TEXT,
    pending_since TIMESTAMPTZ,
    last_error TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (sink_id, aggregate_id)
);

ALTER TABLE aggregate_sequences ADD COLUMN last_txid BIGINT NOT NULL DEFAULT 0;
"""

SQLITE = """
CREATE TABLE sinks (
    id CHAR(32) PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('nats','http')),
    url TEXT,
    event_types JSON,
    secret TEXT,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE delivery_heads (
    sink_id CHAR(32) NOT NULL REFERENCES sinks(id) ON DELETE CASCADE,
    aggregate_id TEXT NOT NULL,
    delivered_sequence BIGINT NOT NULL,
    target_sequence BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready','dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME NOT NULL,
    leased_until DATETIME,
    lease_owner TEXT,
    pending_since DATETIME,
    last_error TEXT,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (sink_id, aggregate_id)
);

ALTER TABLE aggregate_sequences ADD COLUMN last_txid BIGINT NOT NULL DEFAULT 0;
"""

# Indexes are the same text on both dialects.
INDEXES = """
CREATE UNIQUE INDEX outbox_aggregate_sequence_uq ON outbox (aggregate_id, sequence);
CREATE INDEX outbox_created_idx ON outbox (created_at);
CREATE INDEX sinks_kind_created_idx ON sinks (kind, created_at, id);
CREATE INDEX delivery_heads_due_idx ON delivery_heads (sink_id, next_attempt_at)
    WHERE state = 'ready' AND delivered_sequence < target_sequence;
CREATE INDEX delivery_heads_pending_idx ON delivery_heads (sink_id, pending_since)
    WHERE delivered_sequence < target_sequence;
CREATE INDEX delivery_heads_aggregate_idx ON delivery_heads (aggregate_id, delivered_sequence);
"""


def _run(script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE)
    _run(INDEXES)


def downgrade() -> None:
    for index in ("outbox_aggregate_sequence_uq", "outbox_created_idx"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    op.execute("DROP TABLE IF EXISTS delivery_heads")
    op.execute("DROP TABLE IF EXISTS sinks")
    op.execute("ALTER TABLE aggregate_sequences DROP COLUMN last_txid")
