"""exchanges: ``since``, the instant an incremental exchange asks the old payer's data
from (``_since``), kept with the exchange rather than read back from its request, which
the purge minimises (issue 54, ADR 0040)

Revision ID: 0043
Revises: 0042
Create Date: 2026-11-27 05:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges") as batch_op:
        batch_op.add_column(sa.Column("since", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchanges") as batch_op:
        batch_op.drop_column("since")
