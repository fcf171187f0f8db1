"""partners.operations: an operator's suspension and the partner's maintenance windows

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23 12:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operations", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("operations")
