"""webhook_deliveries.lease_until dropped: each delivery has one durable workflow

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 15:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Workers no longer compete for due deliveries under a lease: a delivery's workflow
    # (its id is the delivery's) is the only one that claims it.
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("lease_until")


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
