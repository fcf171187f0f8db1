"""an $everything snapshot records what judged it and each entry's version judged, so a
later page sends a record still at that version without judging it again (issue 67)

Revision ID: 0053
Revises: 0052
Create Date: 2026-11-28 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0053"
down_revision = "0052"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Snapshots made before have neither: each of their pages judges its records again.
    with op.batch_alter_table("disclosure_snapshots") as batch:
        batch.add_column(sa.Column("judged_by", sa.String(200), nullable=True))
    with op.batch_alter_table("disclosure_snapshot_refs") as batch:
        batch.add_column(sa.Column("version_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("disclosure_snapshot_refs") as batch:
        batch.drop_column("version_id")
    with op.batch_alter_table("disclosure_snapshots") as batch:
        batch.drop_column("judged_by")
