"""an export's members keep how many resources their decisions withheld, as $everything's
audit counts them: a completed export's disclosures are counted from them (ADR 0032)

Revision ID: 0036
Revises: 0035
Create Date: 2026-11-26 22:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_export_members") as batch:
        batch.add_column(sa.Column("withheld_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_export_members") as batch:
        batch.drop_column("withheld_count")
