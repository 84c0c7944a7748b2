"""The send queue: one row per outbound message kobliat delivers to a provider.

A row is written in the same transaction as its message. Senders claim the oldest unfinished
row of each conversation (`queued` → `sending` under a lease), so one conversation has at most
one send in flight and its messages go out in creation order. A sent row is deleted (the message
holds the provider's id and status); a failed one stays for an operator.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

POSTGRES = """
CREATE TABLE send_queue (
    id BIGSERIAL PRIMARY KEY,
    message_id UUID NOT NULL UNIQUE,
    conversation_id UUID NOT NULL,
    provider TEXT NOT NULL,
    route JSONB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued','sending','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    leased_until TIMESTAMPTZ,
    lease_owner TEXT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)
"""

SQLITE = """
CREATE TABLE send_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id CHAR(32) NOT NULL UNIQUE,
    conversation_id CHAR(32) NOT NULL,
    provider TEXT NOT NULL,
    route JSON NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued','sending','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME NOT NULL,
    leased_until DATETIME,
    lease_owner TEXT,
    last_error TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
)
"""

# Same text on both dialects.
INDEXES = """
CREATE INDEX send_queue_active_idx ON send_queue (conversation_id, id)
    WHERE state IN ('queued','sending');
CREATE INDEX send_queue_due_idx ON send_queue (next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX send_queue_failed_idx ON send_queue (updated_at, id) WHERE state = 'failed'
"""


def upgrade() -> None:
    op.execute(POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE)
    for statement in INDEXES.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE send_queue")
