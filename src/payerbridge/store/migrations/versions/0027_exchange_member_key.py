"""exchanges.member_key: whom an exchange's data is held for (the client's member, hashed)

Received resources are reconciled by source identity (ADR 0029): our id of each is
derived from the client, our member, the old payer and its id there. ``member_key``
finds the same member's data from other old payers (conflicts between them). Exchanges
stored before this revision have none: their data keeps its random ids.

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-27 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_key", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_exchanges_member_key", ["member_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_index("ix_exchanges_member_key")
        batch_op.drop_column("member_key")
