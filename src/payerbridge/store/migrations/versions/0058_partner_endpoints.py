"""partners.endpoints: a partner's several endpoints, each with its priority, status,
versions and source (ADR 0060)

Revision ID: 0058
Revises: 0057
Create Date: 2026-11-29 04:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0058"
down_revision = "0057"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("endpoints", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("endpoints")
