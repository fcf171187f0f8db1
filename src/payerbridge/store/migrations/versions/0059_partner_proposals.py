"""partner_proposals: what directory imports hold for an operator's approval (ADR 0062)

Revision ID: 0059
Revises: 0058
Create Date: 2026-11-29 05:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0059"
down_revision = "0058"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "partner_proposals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("directory", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("organization", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("based_on", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_partner_proposals_partner",
        "partner_proposals",
        ["partner_id", "directory", "created_at"],
    )
    op.create_index(
        "ux_partner_proposals_pending",
        "partner_proposals",
        ["partner_id", "directory"],
        unique=True,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_index("ix_partner_proposals_status", "partner_proposals", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("partner_proposals")
