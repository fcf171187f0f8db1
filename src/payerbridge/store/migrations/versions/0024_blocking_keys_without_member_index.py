"""identity_member_records.blocking_keys; identity_blocking_keys without its index by
member, and on SQLite without a rowid (ADR 0020)

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-25 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# Each member's keys, copied from the key table while its index by member still serves.
_BACKFILL = {
    "sqlite": (
        "UPDATE identity_member_records SET blocking_keys = COALESCE(("
        "SELECT json_group_array(k.key) FROM identity_blocking_keys k "
        "WHERE k.member_id = identity_member_records.member_id), '[]')"
    ),
    "postgresql": (
        "UPDATE identity_member_records SET blocking_keys = COALESCE(("
        "SELECT json_agg(k.key)::text FROM identity_blocking_keys k "
        "WHERE k.member_id = identity_member_records.member_id), '[]')"
    ),
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("identity_member_records", sa.Column("blocking_keys", sa.Text(), nullable=True))
    op.execute(_BACKFILL[dialect])
    with op.batch_alter_table("identity_member_records") as table:
        table.alter_column("blocking_keys", existing_type=sa.Text(), nullable=False)
    op.drop_index("ix_identity_blocking_keys_member", table_name="identity_blocking_keys")
    if dialect == "sqlite":
        # Rebuilt with its primary key as the table (SQLite cannot alter that in place).
        with op.batch_alter_table(
            "identity_blocking_keys",
            recreate="always",
            table_kwargs={"sqlite_with_rowid": False},
        ):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "identity_blocking_keys", recreate="always", table_kwargs={"sqlite_with_rowid": True}
        ):
            pass
    op.create_index(
        "ix_identity_blocking_keys_member", "identity_blocking_keys", ["member_id"], unique=False
    )
    with op.batch_alter_table("identity_member_records") as table:
        table.drop_column("blocking_keys")
