"""The audit room's use cases: sign checkpoints of the chain, and verify it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from payerbridge.audit.chain import GENESIS, MerkleFrontier
from payerbridge.audit.checkpoints import (
    CheckpointPolicy,
    StoredCheckpoint,
    due_checkpoints,
    sign_checkpoint,
)
from payerbridge.audit.model import Checkpoint
from payerbridge.audit.ports import AuditChain, CheckpointSink, Unit
from payerbridge.audit.proofs import NODE_LEVELS
from payerbridge.audit.verification import ChainReport, event_break, verify_chain
from payerbridge.errors import AuditChainBroken

__all__ = ["AuditChainBroken", "verify_audit", "write_checkpoints"]

logger = logging.getLogger(__name__)


def write_checkpoints(
    chain: AuditChain[Unit],
    sink: CheckpointSink,
    key: Ed25519PrivateKey,
    unit: Unit,
    *,
    now: datetime,
    policy: CheckpointPolicy,
) -> list[Checkpoint]:
    """Sign the checkpoints that are due (``due_checkpoints``), record them in ``unit``
    and publish them to ``sink`` before it commits (a sink that fails rolls the record
    back); the events since the last checkpoint are checked first, so a chain changed in
    the database is never signed. Returns what was published (nothing when none was due
    or another process made them first)."""
    last = chain.last_checkpoint()
    last_seq = 0 if last is None else last.checkpoint.seq
    head_seq, _ = chain.head()
    due = due_checkpoints(
        last_seq=last_seq,
        last_at=None if last is None else last.checkpoint.at,
        head_seq=head_seq,
        now=now,
        policy=policy,
    )
    if not due:
        return []
    frontier = MerkleFrontier() if last is None else last.frontier.copy()
    previous = GENESIS if last is None else last.checkpoint.chain_head
    made: list[StoredCheckpoint] = []
    nodes: list[tuple[int, int, str]] = []  # kept subtree roots, for proofs
    expected, wanted = last_seq + 1, set(due)
    for event in chain.events(after=last_seq, up_to=due[-1]):
        found = event_break(event, expected, previous)
        if found is not None:
            raise AuditChainBroken(f"audit event {found.seq}: {found.reason}")
        nodes.extend(n for n in frontier.add_nodes(event.leaf_hash) if n[0] in NODE_LEVELS)
        previous = event.chain_hash
        if event.seq in wanted:
            signed = sign_checkpoint(event.seq, previous, frontier.root(), now, key)
            made.append(StoredCheckpoint(signed, frontier.copy(), tuple(nodes)))
            nodes = []
        expected += 1
    if expected <= due[-1]:
        raise AuditChainBroken(f"audit event {expected} is missing")
    try:
        saved = chain.save_checkpoints(unit, made)
        if saved:
            sink.publish([stored.checkpoint for stored in made])
    except Exception:
        # Nothing is signed until every place takes it: the unprotected tail grows.
        logger.error(
            "audit checkpoints not published; tried again at the next tick",
            extra={"seq": due[-1], "unsigned_events": head_seq - last_seq},
        )
        raise
    if not saved:
        return []
    checkpoints = [stored.checkpoint for stored in made]
    logger.info(
        "audit checkpoints signed",
        extra={"seq": checkpoints[-1].seq, "checkpoints": len(checkpoints)},
    )
    return checkpoints


def verify_audit(
    chain: AuditChain[Unit],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
    *,
    witnessed: Sequence[Checkpoint] = (),
    against: Sequence[Checkpoint] = (),
) -> ChainReport:
    """The whole stored chain checked against the signed checkpoints (the local file's and
    the witness's) and its head row; each checkpoint in ``against`` is proven extended by
    the chain (RFC 9162 consistency). The chain is checked as its head row stood when
    read: events other processes append meanwhile are the next verification's, not
    events the head row failed to record."""
    head = chain.head()
    report = verify_chain(
        chain.events(up_to=head[0]),
        checkpoints,
        public_key,
        head=head,
        witnessed=witnessed,
        against=against,
    )
    first = last = 0
    for event in chain.events(after=head[0]):
        first, last = first or event.seq, event.seq
    if last > chain.head()[0]:
        # Every append moves the head row in its own transaction, so a head read after
        # the events covers them: events past it were written around the chain.
        report.problems.append(
            f"events {first}..{last} lie beyond the chain head row: they were written without it"
        )
    return report
