"""identity links: the other payers' member ids and our UMBs sealed at rest, found by a
keyed blind index (issue 54, ADR 0039)

``value`` becomes text (a sealed value is longer than the identifier) and ``value_key``
holds a keyed hash of the identifier, by which links are looked up. The rows stored before
keep their plaintext with no ``value_key``: a migration cannot reach the keys, so the
next start seals them and fills their keys before anything reads them (a row without a
``value_key`` is the only plaintext a pass accepts).

Revision ID: 0042
Revises: 0041
Create Date: 2026-11-27 05:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_identity_links_identifier", table_name="identity_links")
    with op.batch_alter_table("identity_links") as batch_op:
        batch_op.alter_column(
            "value", existing_type=sa.String(200), type_=sa.Text(), existing_nullable=False
        )
        batch_op.add_column(sa.Column("value_key", sa.String(64), nullable=True))
    op.create_index(
        "ix_identity_links_value_key", "identity_links", ["value_key", "system"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_identity_links_value_key", table_name="identity_links")
    with op.batch_alter_table("identity_links") as batch_op:
        batch_op.drop_column("value_key")
        batch_op.alter_column(
            "value", existing_type=sa.Text(), type_=sa.String(200), existing_nullable=False
        )
    op.create_index(
        "ix_identity_links_identifier", "identity_links", ["system", "value"], unique=False
    )
