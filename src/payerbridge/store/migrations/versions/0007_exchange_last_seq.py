"""exchanges.last_seq: the seq of the exchange's last transition, on its own row

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 15:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Numbered under the row's lock: a writer that waited for the lock sees the row as the
    # last writer left it, where a read of the transitions could predate that writer.
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seq", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE exchanges SET last_seq = COALESCE((SELECT max(t.seq) FROM "
        "exchange_transitions t WHERE t.exchange_id = exchanges.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_column("last_seq")
