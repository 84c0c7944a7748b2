"""API keys remember when they were last used (shown by `kobliat keys list`).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    column_type = "TIMESTAMPTZ" if op.get_bind().dialect.name == "postgresql" else "DATETIME"
    op.execute(f"ALTER TABLE api_keys ADD COLUMN last_used_at {column_type}")


def downgrade() -> None:
    op.execute("ALTER TABLE api_keys DROP COLUMN last_used_at")
