"""exchanges.request_shape: the HRex version whose $member-match shape the route chose

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23 11:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_shape", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_column("request_shape")
