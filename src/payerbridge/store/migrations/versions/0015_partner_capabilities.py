"""partners.capabilities: what the partner's CapabilityStatement said, and when

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capabilities", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("capabilities_read_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("capabilities_read_at")
        batch_op.drop_column("capabilities")
