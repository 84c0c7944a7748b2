"""Inbox failures: a delivery that cannot succeed is marked failed (for an operator to replay).

Deliveries that had used up their attempts before this revision become failed too, so they
show in `kobliat inbox list`.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The worker's give-up point before this revision (kobliat.inbox.model.MAX_ATTEMPTS).
_EXHAUSTED = 12

# Same text on both dialects from here on.
UPGRADE = f"""
UPDATE inbox SET failed_at = next_attempt_at
    WHERE processed_at IS NULL AND attempts >= {_EXHAUSTED};
DROP INDEX inbox_due_idx;
CREATE INDEX inbox_due_idx ON inbox (next_attempt_at, id)
    WHERE processed_at IS NULL AND failed_at IS NULL;
CREATE INDEX inbox_failed_idx ON inbox (failed_at, id) WHERE failed_at IS NOT NULL
"""

# Without the column, the old worker skips a row only once its attempts are used up.
DOWNGRADE = f"""
UPDATE inbox SET attempts = {_EXHAUSTED} WHERE failed_at IS NOT NULL AND attempts < {_EXHAUSTED};
DROP INDEX inbox_failed_idx;
DROP INDEX inbox_due_idx;
CREATE INDEX inbox_due_idx ON inbox (next_attempt_at, id) WHERE processed_at IS NULL;
ALTER TABLE inbox DROP COLUMN failed_at
"""


def _run(script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    column_type = "TIMESTAMPTZ" if op.get_bind().dialect.name == "postgresql" else "DATETIME"
    op.execute(f"ALTER TABLE inbox ADD COLUMN failed_at {column_type}")
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
