"""Conversations in creation order: the index behind `GET /conversations?order=created`.

The activity order changes under a client walking the pages (a conversation that gets a message
jumps ahead of the cursor); creation order never does. `created_at` is never updated, but an
update of a conversation (every message moves `last_activity_at`, itself indexed, so PostgreSQL
cannot update in place) adds an entry to each of the table's indexes: this one costs one more
entry per message, which PostgreSQL's bottom-up deletion removes as the row's old versions die.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX conversations_created_idx ON conversations (created_at, id)")


def downgrade() -> None:
    op.execute("DROP INDEX conversations_created_idx")
