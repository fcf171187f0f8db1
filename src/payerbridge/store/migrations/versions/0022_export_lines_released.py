"""bulk_output_lines.version_id, bulk_export_members.code_sets: an export's lines carry
the body as released, with the version it was judged at (ADR 0018, amended)

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-24 09:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Lines written before carry neither: their download judges the current body, as then.
    with op.batch_alter_table("bulk_output_lines") as table:
        table.add_column(sa.Column("version_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("bulk_export_members") as table:
        table.add_column(sa.Column("code_sets", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_export_members") as table:
        table.drop_column("code_sets")
    with op.batch_alter_table("bulk_output_lines") as table:
        table.drop_column("version_id")
