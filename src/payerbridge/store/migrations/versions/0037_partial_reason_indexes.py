"""the exchange indexes led by a reason code hold only exchanges that carry one: most
exchanges end without a reason, and an index entry each of them wrote on every insert
and state change was write cost for nothing a search or a scrape reads (issue 53's
cost bound, docs/benchmarks/operations.md)

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-27 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_exchanges_reason_created": ["error_code", "created_at", "id"],
    "ix_exchanges_state_reason": ["state", "error_code"],
}


def upgrade() -> None:
    given = sa.text("error_code IS NOT NULL")
    for name, columns in _INDEXES.items():
        op.drop_index(name, table_name="exchanges")
        op.create_index(name, "exchanges", columns, sqlite_where=given, postgresql_where=given)


def downgrade() -> None:
    for name, columns in _INDEXES.items():
        op.drop_index(name, table_name="exchanges")
        op.create_index(name, "exchanges", columns)
