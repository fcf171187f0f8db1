"""partner_rates: when a rate-limited partner's next call is due, shared by every worker

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-23 12:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_rates",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("due_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partner_rates")
