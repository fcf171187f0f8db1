"""disclosure snapshots: $everything decided once and paged from the database

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_fhir_resources_patient_ref", "fhir_resources", ["patient_id", "ref"])
    op.create_table(
        "disclosure_snapshots",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("withheld", sa.Text(), nullable=False),
    )
    op.create_index("ix_disclosure_snapshots_expires_at", "disclosure_snapshots", ["expires_at"])
    op.create_table(
        "disclosure_snapshot_refs",
        sa.Column(
            "snapshot_id",
            sa.String(length=36),
            sa.ForeignKey("disclosure_snapshots.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("disclosure_snapshot_refs")
    op.drop_index("ix_disclosure_snapshots_expires_at", table_name="disclosure_snapshots")
    op.drop_table("disclosure_snapshots")
    op.drop_index("ix_fhir_resources_patient_ref", table_name="fhir_resources")
