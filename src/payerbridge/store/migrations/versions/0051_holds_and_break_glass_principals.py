"""legal_holds name the principal that placed them; a break-glass grant may wait for a
second operator's approval (issue 67, ADR 0046)

Revision ID: 0051
Revises: 0046
Create Date: 2026-11-27 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0051"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("legal_holds") as batch:
        batch.add_column(sa.Column("placed_by_principal", sa.String(200), nullable=True))
    with op.batch_alter_table("unmask_grants") as batch:
        batch.add_column(
            sa.Column("needs_approval", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("approved_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unmask_grants") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
        batch.drop_column("minutes")
        batch.drop_column("needs_approval")
    with op.batch_alter_table("legal_holds") as batch:
        batch.drop_column("placed_by_principal")
