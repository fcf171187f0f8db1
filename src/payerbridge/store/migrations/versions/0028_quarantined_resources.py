"""quarantined_resources: what failed a profile it claims, held for operators (ADR 0030)

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-26 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_resources",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("mapping_id", sa.String(200), nullable=True),
        sa.Column("mapping_version", sa.String(64), nullable=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("profiles", sa.Text(), nullable=False),
        sa.Column("issues", sa.Text(), nullable=False),
        sa.Column("held_at", UtcDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_quarantined_resources_source", "quarantined_resources", ["source_id", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_quarantined_resources_source", table_name="quarantined_resources")
    op.drop_table("quarantined_resources")
