"""audit_refusal_windows: refused $member-match and $bulk-member-match calls counted per
client, operation, reason and window, each closed window one audit event (ADR 0045)

Revision ID: 0050
Revises: 0049
Create Date: 2026-11-27 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0050"
down_revision = "0049"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_refusal_windows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("window_start", UtcDateTime(), nullable=False),
        sa.Column("window_end", UtcDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_refusal_windows")),
    )
    op.create_index(
        "uq_audit_refusal_windows_window",
        "audit_refusal_windows",
        ["client_id", "operation", "reason", "window_start"],
        unique=True,
    )
    op.create_index(
        "ix_audit_refusal_windows_open", "audit_refusal_windows", ["closed_at", "window_end"]
    )


def downgrade() -> None:
    op.drop_index("ix_audit_refusal_windows_open", table_name="audit_refusal_windows")
    op.drop_index("uq_audit_refusal_windows_window", table_name="audit_refusal_windows")
    op.drop_table("audit_refusal_windows")
