"""exchanges counted by state and error code from an index alone: a metrics scrape's
``GROUP BY state, error_code`` reads no table rows (ADR 0032)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-02 10:00:00.000000
"""

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_exchanges_state_reason", "exchanges", ["state", "error_code"])


def downgrade() -> None:
    op.drop_index("ix_exchanges_state_reason", table_name="exchanges")
