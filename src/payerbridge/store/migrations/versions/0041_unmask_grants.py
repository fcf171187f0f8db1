"""break-glass: a named operator's time-limited, reasoned grant to see identifiers the
console masks (issue 54, ADR 0038)

Revision ID: 0041
Revises: 0040
Create Date: 2026-11-27 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unmask_grants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("operator", sa.String(64), sa.ForeignKey("operators.name"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_unmask_grants_operator", "unmask_grants", ["operator", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_unmask_grants_operator", table_name="unmask_grants")
    op.drop_table("unmask_grants")
