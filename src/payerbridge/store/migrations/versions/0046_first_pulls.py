"""pull_schedules: a schedule may start with the member's first request (no source
exchange), and says when it waits to look at the pull it started (ADR 0040, amended)

Revision ID: 0046
Revises: 0045
Create Date: 2026-11-28 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0046"
down_revision = "0045"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pull_schedules") as batch:
        batch.alter_column("source_exchange_id", existing_type=sa.String(64), nullable=True)
        batch.add_column(
            sa.Column("awaiting_pull", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("pull_schedules") as batch:
        batch.drop_column("awaiting_pull")
        batch.alter_column("source_exchange_id", existing_type=sa.String(64), nullable=False)
