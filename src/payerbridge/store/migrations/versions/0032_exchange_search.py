"""exchanges searchable: the submitting request's id, the member key from submission,
an index per filter in the search's order; audit events by request (issue 53)

``GET /exchanges`` pages newest first by (created_at, id) with a keyset cursor; each
filter (client, partner, member, reason) leads an index in that order. ``request_id`` is
the X-Request-ID that submitted the exchange, taken for earlier rows from their first
audit event. ``member_key`` (the client's member id, hashed) was written only once data
was stored; earlier rows get it from their request, as ``exchange.reconcile`` computes it.

Revision ID: 0032
Revises: 0029
Create Date: 2026-11-28 10:00:00.000000
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0029"
branch_labels = None
depends_on = None

_BATCH = 2000
_SEARCH_INDEXES = {
    "ix_exchanges_created": ["created_at", "id"],
    "ix_exchanges_updated": ["updated_at"],
    "ix_exchanges_client_created": ["client_id", "created_at", "id"],
    "ix_exchanges_partner_created": ["partner_id", "created_at", "id"],
    "ix_exchanges_member_created": ["member_key", "created_at", "id"],
    "ix_exchanges_reason_created": ["error_code", "created_at", "id"],
    "ix_exchanges_request": ["request_id"],
}


def upgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
        batch_op.drop_index("ix_exchanges_member_key")  # led by the member's search index now
        for name, columns in _SEARCH_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    op.create_index("ix_audit_events_request", "audit_events", ["request_id"], unique=False)
    _fill_request_ids()
    _fill_member_keys()


def _fill_request_ids() -> None:
    op.execute(
        "UPDATE exchanges SET request_id = ("
        " SELECT e.request_id FROM audit_events e"
        " WHERE e.entity_type = 'Exchange' AND e.entity_id = exchanges.id"
        " AND e.action = 'exchange.transition' ORDER BY e.seq LIMIT 1)"
        " WHERE request_id IS NULL"
    )


def _member_key(client_id: str, request: str) -> str | None:
    """``exchange.reconcile.member_key_of`` as of this revision, over the new card."""
    card = json.loads(request).get("new_coverage") or {}
    member = card.get("member_id") or card.get("subscriber_id")
    if not member:
        return None
    return hashlib.sha256(f"{client_id}\n{member}".encode()).hexdigest()[:40]


def _fill_member_keys() -> None:
    connection = op.get_bind()
    table = sa.table(
        "exchanges",
        sa.column("id", sa.String),
        sa.column("client_id", sa.String),
        sa.column("request", sa.Text),
        sa.column("member_key", sa.String),
    )
    last = ""
    while True:  # in batches by id: memory stays flat however many exchanges there are
        rows = connection.execute(
            sa.select(table.c.id, table.c.client_id, table.c.request)
            .where(table.c.member_key.is_(None), table.c.id > last)
            .order_by(table.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        keyed = [
            {"row_id": row.id, "key": key}
            for row in rows
            if (key := _member_key(row.client_id, row.request)) is not None
        ]
        if keyed:
            connection.execute(
                table.update()
                .where(table.c.id == sa.bindparam("row_id"))
                .values(member_key=sa.bindparam("key")),
                keyed,
            )
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_audit_events_request", table_name="audit_events")
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        for name in _SEARCH_INDEXES:
            batch_op.drop_index(name)
        batch_op.create_index("ix_exchanges_member_key", ["member_key"], unique=False)
        batch_op.drop_column("request_id")
