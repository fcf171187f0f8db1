"""obligation rows (issue 54, ADR 0037): for each exchange, review case and request
answered at once, the obligation that applies, its due time and whether it was met

Revision ID: 0040
Revises: 0039
Create Date: 2026-11-28 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "obligation_clocks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("obligation", sa.String(64), nullable=False),
        sa.Column("obligation_version", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("done_at", UtcDateTime(), nullable=True),
        sa.Column("standing", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index(
        "ux_obligation_clocks_subject",
        "obligation_clocks",
        ["subject_id", "obligation", "subject_type"],
        unique=True,
    )
    op.create_index(
        "ix_obligation_clocks_started", "obligation_clocks", ["started_at", "obligation"]
    )
    not_done = sa.text("done_at IS NULL")
    op.create_index(
        "ix_obligation_clocks_open",
        "obligation_clocks",
        ["obligation", "due_at"],
        sqlite_where=not_done,
        postgresql_where=not_done,
    )


def downgrade() -> None:
    op.drop_index("ix_obligation_clocks_open", table_name="obligation_clocks")
    op.drop_index("ix_obligation_clocks_started", table_name="obligation_clocks")
    op.drop_index("ux_obligation_clocks_subject", table_name="obligation_clocks")
    op.drop_table("obligation_clocks")
