"""onboarding_members: ``member_patient``, the one Patient at the plan a member's imported
records were kept under, how it was chosen and where its sources' Patients differ, as
JSON (ADR 0054)

Revision ID: 0060
Revises: 0059
Create Date: 2026-11-29 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0060"
down_revision = "0059"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("onboarding_members") as batch_op:
        batch_op.add_column(sa.Column("member_patient", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("onboarding_members") as batch_op:
        batch_op.drop_column("member_patient")
