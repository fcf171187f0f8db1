"""exchanges searchable: the submitting request's id, the member key from submission,
an index per filter in the search's order; audit events by request; the audit tree's
kept subtree roots, for proofs (issue 53)

``GET /exchanges`` pages newest first by (created_at, id) with a keyset cursor; each
filter (client, partner, member, reason) leads an index in that order. ``request_id`` is
the X-Request-ID that submitted the exchange, taken for earlier rows from their first
audit event. ``member_key`` (the client's member id, hashed) was written only once data
was stored; earlier rows get it from their request, as ``exchange.received.reconcile`` computes it.
``audit_tree_nodes`` keeps the roots of the Merkle tree's perfect subtrees of 2**8,
2**16, 2**24 and 2**32 leaves (``audit/proofs.py``); those the signed checkpoints cover
so far are computed here from the stored leaves, the next ones as checkpoints are signed.

Revision ID: 0032
Revises: 0030
Create Date: 2026-11-28 10:00:00.000000
"""

import hashlib
import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0030"
branch_labels = None
depends_on = None

_BATCH = 2000
_SEARCH_INDEXES = {
    "ix_exchanges_created": ["created_at", "id"],
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
    op.create_table(
        "audit_tree_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "idx",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    _fill_request_ids()
    _fill_member_keys()
    _fill_tree_nodes()


def _fill_request_ids() -> None:
    op.execute(
        "UPDATE exchanges SET request_id = ("
        " SELECT e.request_id FROM audit_events e"
        " WHERE e.entity_type = 'Exchange' AND e.entity_id = exchanges.id"
        " AND e.action = 'exchange.transition' ORDER BY e.seq LIMIT 1)"
        " WHERE request_id IS NULL"
    )


def _member_key(client_id: str, request: str) -> str | None:
    """``exchange.received.reconcile.member_key_of`` as of this revision, over the new card."""
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


_KEPT_LEVELS = (8, 16, 24, 32)  # ``audit.proofs.NODE_LEVELS`` as of this revision


@dataclass
class MerkleFrontier:
    """``audit.chain.MerkleFrontier`` as of this revision, frozen here (a migration does
    not import code that can change under it): the RFC 6962 Merkle tree over a growing
    list of leaves, kept as the roots of its perfect subtrees (largest first)."""

    size: int = 0
    subtrees: list[str] = field(default_factory=list)

    def add_nodes(self, leaf: str) -> list[tuple[int, int, str]]:
        """Add ``leaf``; the perfect subtrees it completed, as (height, index, root): the
        subtree at height ``h`` and index ``i`` holds leaves ``[i * 2**h, (i+1) * 2**h)``."""
        self.subtrees.append(leaf)
        self.size += 1
        made = []
        # Merge equal-sized subtrees: one merge per trailing zero bit of the new size.
        size, height = self.size, 0
        while size % 2 == 0:
            right = self.subtrees.pop()
            left = self.subtrees.pop()
            self.subtrees.append(_hash_children(left, right))
            size //= 2
            height += 1
            made.append((height, (self.size >> height) - 1, self.subtrees[-1]))
        return made


def _hash_children(left: str, right: str) -> str:
    """An RFC 6962 interior node over two hex hashes."""
    return hashlib.sha256(b"\x01" + bytes.fromhex(left) + bytes.fromhex(right)).hexdigest()


def _fill_tree_nodes() -> None:
    """The kept subtree roots over the leaves the last checkpoint covers, streamed."""
    connection = op.get_bind()
    signed = connection.execute(sa.text("SELECT MAX(seq) FROM audit_checkpoints")).scalar()
    if not signed:
        return
    frontier, after = MerkleFrontier(), 0
    kept: list[tuple[int, int, str]] = []
    while after < signed:
        leaves = connection.execute(
            sa.text(
                "SELECT seq, leaf_hash FROM audit_events WHERE seq > :after AND seq <= :up_to"
                " ORDER BY seq LIMIT :batch"
            ),
            {"after": after, "up_to": signed, "batch": _BATCH * 5},
        ).all()
        if not leaves:
            return  # events missing below a checkpoint: ``audit verify`` names them
        for seq, leaf in leaves:
            kept.extend(n for n in frontier.add_nodes(leaf) if n[0] in _KEPT_LEVELS)
            after = seq
        if kept:
            connection.execute(
                sa.text("INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                [{"l": level, "i": index, "h": digest} for level, index, digest in kept],
            )
            kept = []


def downgrade() -> None:
    op.drop_table("audit_tree_nodes")
    op.drop_index("ix_audit_events_request", table_name="audit_events")
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        for name in _SEARCH_INDEXES:
            batch_op.drop_index(name)
        batch_op.create_index("ix_exchanges_member_key", ["member_key"], unique=False)
        batch_op.drop_column("request_id")
