"""the data lifecycle (issue 54, ADR 0038): legal holds that refuse a member's erasure,
and when an exchange's request was minimised to what its audit needs

Revision ID: 0038
Revises: 0037
Create Date: 2026-11-27 05:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(200), nullable=False),
        sa.Column("placed_at", UtcDateTime(), nullable=False),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Column("released_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_legal_holds_member", "legal_holds", ["member_id", "released_at"])
    with op.batch_alter_table("exchanges") as batch_op:
        batch_op.add_column(sa.Column("request_minimised_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchanges") as batch_op:
        batch_op.drop_column("request_minimised_at")
    op.drop_index("ix_legal_holds_member", table_name="legal_holds")
    op.drop_table("legal_holds")
