"""audit events hash-chained: seq, leaf and chain hashes, the chain head, checkpoints, triggers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 10:00:00.000000
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# PostgreSQL (one command per statement: ours are prepared): each new row takes the next
# place in the chain from the head row, which stays locked until the transaction ends, so
# writers in every process take turns.
_PG_TRIGGERS = [
    """CREATE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        head_seq bigint;
        head_hash text;
    BEGIN
        SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1 FOR UPDATE;
        NEW.seq := head_seq + 1;
        NEW.prev_hash := head_hash;
        NEW.chain_hash := encode(sha256(
            decode('01', 'hex') || decode(head_hash, 'hex') || decode(NEW.leaf_hash, 'hex')
        ), 'hex');
        UPDATE audit_head SET seq = NEW.seq, hash = NEW.chain_hash WHERE id = 1;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_chain()""",
    """CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
]

# SQLite: the writer links each row (writers take turns on the database's one write
# lock); these refuse a row out of sequence, move the head, and refuse changes.
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_events_in_sequence BEFORE INSERT ON audit_events BEGIN
        SELECT RAISE(ABORT, 'audit event out of sequence')
        WHERE NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
           OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1);
    END""",
    """CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events BEGIN
        UPDATE audit_head SET seq = NEW.seq, hash = NEW.chain_hash WHERE id = 1;
    END""",
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN
        SELECT RAISE(ABORT, 'audit events are append-only');
    END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN
        SELECT RAISE(ABORT, 'audit events are append-only');
    END""",
]


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", _SEQ, nullable=True))
        batch_op.add_column(sa.Column("leaf_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chain_head", sa.String(length=64), nullable=False),
        sa.Column("merkle_root", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    head_seq, head_hash = _chain_existing_events()
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)").bindparams(
            seq=head_seq, hash=head_hash
        )
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        for name in ("leaf_hash", "prev_hash", "chain_hash"):
            batch_op.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("seq", existing_type=_SEQ, nullable=False)
        batch_op.create_unique_constraint(op.f("uq_audit_events_seq"), ["seq"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)


def _chain_existing_events() -> tuple[int, str]:
    """Link the events written before the chain existed, in the order they were written."""
    bind = op.get_bind()
    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("at", UtcDateTime()),
        *(sa.column(name, sa.String()) for name in _FIELDS),
        sa.column("seq", sa.BigInteger()),
        sa.column("leaf_hash", sa.String()),
        sa.column("prev_hash", sa.String()),
        sa.column("chain_hash", sa.String()),
    )
    rows = bind.execute(
        sa.select(events.c.id, events.c.at, *(events.c[n] for n in _FIELDS)).order_by(events.c.id)
    ).all()
    seq, previous = 0, GENESIS
    for row in rows:
        fields = {name: getattr(row, name) for name in _FIELDS}
        leaf = hash_leaf(canonical_bytes(row.at, fields))
        current = link(previous, leaf)
        seq += 1
        bind.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(seq=seq, leaf_hash=leaf, prev_hash=previous, chain_hash=current)
        )
        previous = current
    return seq, previous


_FIELDS = ("actor", "action", "entity_type", "entity_id", "outcome", "request_id", "detail")

# The chain's hashing as ``audit.chain`` had it at this revision, frozen here: a migration
# does not import code that can change under it (issue 69).
GENESIS = hashlib.sha256(b"").hexdigest()  # RFC 6962's hash of the empty tree


def canonical_bytes(at: datetime, fields: Mapping[str, str | None]) -> bytes:
    """The event's ``_FIELDS`` and its instant as one canonical JSON document (sorted keys,
    UTC instant with microseconds)."""
    instant = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    document = {name: fields[name] for name in _FIELDS}
    document["at"] = instant.isoformat(timespec="microseconds")
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def hash_leaf(data: bytes) -> str:
    """An RFC 6962 leaf hash (hex)."""
    return hashlib.sha256(b"\x00" + data).hexdigest()


def link(previous: str, leaf: str) -> str:
    """The chain hash of an event: an RFC 6962 interior node over the chain hash before it
    and its leaf."""
    return hashlib.sha256(b"\x01" + bytes.fromhex(previous) + bytes.fromhex(leaf)).hexdigest()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP TRIGGER audit_events_chain ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
        op.execute("DROP FUNCTION audit_events_chain()")
    else:
        for name in ("in_sequence", "advance_head", "no_update", "no_delete"):
            op.execute(f"DROP TRIGGER audit_events_{name}")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_audit_events_seq"), type_="unique")
        for name in ("chain_hash", "prev_hash", "leaf_hash", "seq"):
            batch_op.drop_column(name)
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
