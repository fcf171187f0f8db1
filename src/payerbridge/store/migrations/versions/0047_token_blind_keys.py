"""fhir_tokens: the search index keeps a keyed blind key of each identifier, never the
identifier (issue 67, ADR 0044)

``value_key`` holds an HMAC of the searched value, by which searches find resources; new
rows keep ``value`` empty. The rows stored before keep their plaintext with no
``value_key``: a migration cannot reach the key, so the next start fills their keys and
empties their values before anything searches (as 0042 did for the identity links).

Revision ID: 0047
Revises: 0046
Create Date: 2026-11-27 21:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0047"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_fhir_tokens_lookup", table_name="fhir_tokens")
    with op.batch_alter_table("fhir_tokens") as batch_op:
        batch_op.add_column(sa.Column("value_key", sa.String(64), nullable=True))
    op.create_index(
        "ix_fhir_tokens_value_key",
        "fhir_tokens",
        ["resource_type", "param", "value_key"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_fhir_tokens_value_key", table_name="fhir_tokens")
    with op.batch_alter_table("fhir_tokens") as batch_op:
        batch_op.drop_column("value_key")
    op.create_index(
        "ix_fhir_tokens_lookup", "fhir_tokens", ["resource_type", "param", "value"], unique=False
    )
