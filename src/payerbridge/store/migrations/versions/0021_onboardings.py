"""onboardings, onboarding_members, onboarding_chunks: plan-year onboarding (new payer)

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-23 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "onboardings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
    )
    op.create_table(
        "onboarding_members",
        sa.Column(
            "onboarding_id", sa.String(64), sa.ForeignKey("onboardings.id"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.Column("bundle", sa.Text(), nullable=False),
        sa.Column("result", sa.String(24), nullable=True),
        sa.Column("old_patient", sa.String(64), nullable=True),
        sa.Column("imported", sa.Integer(), nullable=True),
    )
    op.create_table(
        "onboarding_chunks",
        sa.Column(
            "onboarding_id", sa.String(64), sa.ForeignKey("onboardings.id"), primary_key=True
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("first_member", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("status_url", sa.String(2000), nullable=True),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("onboarding_chunks")
    op.drop_table("onboarding_members")
    op.drop_table("onboardings")
