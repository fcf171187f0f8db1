"""source_file_chunks: a replicated source's file kept in sealed pieces, never whole
(issue 71, ADR 0055)

A file kept before stays whole in ``source_files.body`` and reads as it did; a file kept
since leaves that column empty and its pieces here.

Revision ID: 0056
Revises: 0055
Create Date: 2026-11-29 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0056"
down_revision = "0055"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_file_chunks",
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["source_files.id"],
            name=op.f("fk_source_file_chunks_file_id_source_files"),
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_source_file_chunks")),
    )


def downgrade() -> None:
    # A file kept in pieces has no body to give back to 0055: its pieces go with the
    # table, and it reads as purged (its digest, report and what it gave stay).
    op.drop_table("source_file_chunks")
