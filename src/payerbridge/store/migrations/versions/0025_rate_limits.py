"""rate_limits: the shared state of the per-client, per-operation rate limits (ADR 0025)

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-25 23:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (subject, operation): the bucket's theoretical arrival time (GCRA) in
    # seconds since the epoch; ``leased`` is how many requests the last lease took.
    op.create_table(
        "rate_limits",
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("operation", sa.String(length=200), nullable=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.Column("leased", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "operation"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
