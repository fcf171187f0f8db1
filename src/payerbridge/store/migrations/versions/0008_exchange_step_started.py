"""exchanges.step_started_at: when the step whose partner call waits to be retried began

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 17:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # With the attempts and the next attempt's time, all a workflow needs to resume a
    # waiting call from the row (its step's time budget runs from this).
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step_started_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_column("step_started_at")
