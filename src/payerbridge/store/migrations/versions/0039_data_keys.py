"""the data keys that seal the PHI columns outside the FHIR store (issue 54, ADR 0039)

The values already stored stay as they are here: sealing them needs the key-encryption
key, which is kept outside the database and which a migration never reads. The first
start after this migration (any ``payerbridge`` command that opens the database) makes
the first data key and seals what is left, before anything reads it; until then no
data key has ``sealed_all_at`` and readers refuse a plaintext value rather than trust it.

Revision ID: 0039
Revises: 0038
Create Date: 2026-11-27 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("kek_fingerprint", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime(), nullable=True),
        sa.Column("sealed_all_at", UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("data_keys")
