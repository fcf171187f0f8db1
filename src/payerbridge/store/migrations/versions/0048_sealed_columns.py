"""sealed_columns: which sealed columns a pass has sealed once (issue 67, ADR 0044)

The member data sealed from this release on (the FHIR store's bodies, the partners' raw
answers, the bulk jobs' requests, lines and Groups, the onboardings' bundles, the
quarantine, the consents as presented, the idempotent answers, the webhooks' bodies) is
plaintext until the next start seals it; a column is listed here once its first pass
has ended, and from then on a plaintext value in it is refused. The columns ADR 0039
sealed are listed at once where a pass already sealed them.

Revision ID: 0048
Revises: 0047
Create Date: 2026-11-27 21:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None

_SEALED_BY_0039 = (
    "identity_member_records.record",
    "identity_reviews.request_record",
    "exchanges.request",
    "pull_schedules.request",
    "identity_links.value",
)


def upgrade() -> None:
    op.create_table(
        "sealed_columns",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sealed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sealed_columns"),
    )
    # Copied as stored (whatever the backend keeps a time as).
    for name in _SEALED_BY_0039:
        op.execute(
            sa.text(
                "INSERT INTO sealed_columns (name, sealed_at) SELECT :name, MIN(sealed_all_at) "
                "FROM data_keys HAVING MIN(sealed_all_at) IS NOT NULL"
            ).bindparams(name=name)
        )


def downgrade() -> None:
    op.drop_table("sealed_columns")
