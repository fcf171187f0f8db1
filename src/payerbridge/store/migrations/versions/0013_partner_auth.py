"""partners.auth: how we get a token from a partner (none, smart or udap)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 09:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auth", sa.String(length=8), nullable=False, server_default="none")
        )
    # Until now a client id meant SMART Backend Services.
    op.execute("UPDATE partners SET auth = 'smart' WHERE client_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("auth")
