"""onboardings: ``since``, the instant an incremental onboarding asks the old payer's
exports from (``_since`` on ``$davinci-data-export``), and ``received_at``, what its data
reflects (the earliest ``transactionTime`` of its exports: the ``since`` of the next);
onboarding_members: ``changed``, what a member's incremental answer held that changed
(issue 54, ADR 0040)

Revision ID: 0045
Revises: 0044
Create Date: 2026-11-28 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("onboardings") as batch_op:
        batch_op.add_column(sa.Column("since", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("received_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("onboarding_members") as batch_op:
        batch_op.add_column(sa.Column("changed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("onboarding_members") as batch_op:
        batch_op.drop_column("changed")
    with op.batch_alter_table("onboardings") as batch_op:
        batch_op.drop_column("received_at")
        batch_op.drop_column("since")
