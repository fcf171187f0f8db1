"""source_files: a replicated source's files and what they gave; source_members: a
member's id at a live source (ADR 0031)

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-26 16:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_files",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("mapping", sa.String(length=120), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("mapped_at", UtcDateTime(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "sha256", name="uq_source_files_digest"),
    )
    op.create_table(
        "source_file_resources",
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["source_files.id"]),
        sa.PrimaryKeyConstraint("file_id", "ref"),
    )
    op.create_index("ix_source_file_resources_ref", "source_file_resources", ["ref"])
    op.create_table(
        "source_members",
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "source_key"),
    )
    op.create_index("ix_source_members_member", "source_members", ["member_id", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_source_members_member", table_name="source_members")
    op.drop_table("source_members")
    op.drop_index("ix_source_file_resources_ref", table_name="source_file_resources")
    op.drop_table("source_file_resources")
    op.drop_table("source_files")
