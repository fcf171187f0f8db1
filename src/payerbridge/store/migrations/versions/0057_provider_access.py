"""provider_attributions, opt_out_choices: Provider Access's attribution and the
members' opt-out choices (ADR 0059)

Revision ID: 0057
Revises: 0056
Create Date: 2026-11-29 01:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0057"
down_revision = "0056"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_attributions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("provider_npi", sa.String(10), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("roster", sa.String(120), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_provider_attributions_provider", "provider_attributions", ["provider_npi", "end_day"]
    )
    op.create_index("ix_provider_attributions_member", "provider_attributions", ["member_id"])
    op.create_index("ix_provider_attributions_roster", "provider_attributions", ["basis", "roster"])
    op.create_table(
        "opt_out_choices",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("scope", sa.String(24), nullable=False),
        sa.Column("provider_npi", sa.String(10), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("effective", UtcDateTime(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_opt_out_choices_member", "opt_out_choices", ["member_id", "seq"])


def downgrade() -> None:
    op.drop_table("opt_out_choices")
    op.drop_table("provider_attributions")
