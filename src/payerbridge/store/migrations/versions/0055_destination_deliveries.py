"""destination_deliveries, destination_writes: received records delivered to the plan's
FHIR server (ADR 0053)

Revision ID: 0055
Revises: 0054
Create Date: 2026-11-28 20:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0055"
down_revision = "0054"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destination_deliveries",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("destination_id", sa.String(40), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("issue_codes", sa.String(1400), nullable=True),
        sa.Column("outcome_hash", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("written", sa.Text(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destination_deliveries")),
    )
    op.create_index("ix_destination_deliveries_subject", "destination_deliveries", ["subject"])
    op.create_index("ix_destination_deliveries_due", "destination_deliveries", ["state", "next_at"])
    op.create_table(
        "destination_writes",
        sa.Column("destination_id", sa.String(40), nullable=False),
        sa.Column("ref", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("conditional", sa.Boolean(), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("written_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("destination_id", "ref", name=op.f("pk_destination_writes")),
    )


def downgrade() -> None:
    op.drop_table("destination_writes")
    op.drop_index("ix_destination_deliveries_due", table_name="destination_deliveries")
    op.drop_index("ix_destination_deliveries_subject", table_name="destination_deliveries")
    op.drop_table("destination_deliveries")
