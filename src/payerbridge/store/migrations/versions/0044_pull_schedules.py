"""pull_schedules: standing quarterly and run-off pulls, each pull an exchange asked
``since`` the last successful one (issue 54, ADR 0040)

Revision ID: 0044
Revises: 0043
Create Date: 2026-11-27 05:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_schedules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.Column("member_key", sa.String(64), nullable=True),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("source_exchange_id", sa.String(64), nullable=False),
        sa.Column("last_exchange_id", sa.String(64), nullable=True),
        sa.Column("last_received_at", UtcDateTime(), nullable=True),
        sa.Column("next_due_at", UtcDateTime(), nullable=True),
        sa.Column("coverage_end", UtcDateTime(), nullable=True),
        sa.Column("pulls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("stop_reason", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index(
        "ix_pull_schedules_due", "pull_schedules", ["status", "next_due_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_pull_schedules_due", table_name="pull_schedules")
    op.drop_table("pull_schedules")
