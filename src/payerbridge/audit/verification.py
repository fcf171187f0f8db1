"""Checking the audit chain against its signed checkpoints (pure).

Walks the stored events in sequence order, recomputing each leaf from the event's
fields and each link from the one before it, and compares the chain and the Merkle
tree with every signed checkpoint as it passes it. The first event that does not
check out is named: a field changed, an event missing, a broken link, or (for a
chain re-hashed after an edit) the first event after the last checkpoint that still
agrees, since only the checkpoints then say that something changed before them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from payerbridge.audit.chain import (
    GENESIS,
    ChainBreak,
    MerkleFrontier,
    canonical_bytes,
    hash_leaf,
    link,
)
from payerbridge.audit.checkpoints import Checkpoint, signature_holds
from payerbridge.audit.model import StoredEvent

__all__ = ["ChainReport", "event_break", "verify_chain"]


@dataclass
class ChainReport:
    events: int = 0
    checkpoints_checked: int = 0
    last_seq: int = 0
    chain_head: str = GENESIS
    first_bad: ChainBreak | None = None
    problems: list[str] = field(default_factory=list)  # beyond the first bad event

    @property
    def holds(self) -> bool:
        return self.first_bad is None and not self.problems


def _stored_leaf(event: StoredEvent) -> str:
    return hash_leaf(
        canonical_bytes(
            at=event.at,
            actor=event.actor,
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            outcome=event.outcome,
            request_id=event.request_id,
            detail=event.detail,
        )
    )


def event_break(event: StoredEvent, expected: int, previous: str) -> ChainBreak | None:
    if event.seq != expected:
        if event.seq > expected:
            return ChainBreak(expected, f"event {expected} is missing (the next is {event.seq})")
        return ChainBreak(event.seq, f"event {event.seq} appears twice or out of order")
    if _stored_leaf(event) != event.leaf_hash:
        return ChainBreak(event.seq, "its fields do not match its leaf hash (changed)")
    if event.prev_hash != previous:
        return ChainBreak(event.seq, "it is not linked to the event before it")
    if link(previous, event.leaf_hash) != event.chain_hash:
        return ChainBreak(event.seq, "its chain hash is wrong")
    return None


def verify_chain(
    events: Iterable[StoredEvent],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
    *,
    head: tuple[int, str] | None = None,
) -> ChainReport:
    """Check ``events`` (all of them, in sequence order) against ``checkpoints`` signed
    by ``public_key`` and the stored chain ``head``; the report names the first bad event."""
    report = ChainReport()
    trusted: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if not signature_holds(checkpoint, public_key):
            report.problems.append(f"checkpoint at {checkpoint.seq}: its signature does not hold")
            continue
        known = trusted.setdefault(checkpoint.seq, checkpoint)
        if (known.chain_head, known.merkle_root) != (checkpoint.chain_head, checkpoint.merkle_root):
            report.problems.append(f"two signed checkpoints at {checkpoint.seq} disagree")
    pending = sorted(trusted.values(), key=lambda c: c.seq)
    frontier, previous, expected, agreed = MerkleFrontier(), GENESIS, 1, 0
    for event in events:
        found = event_break(event, expected, previous)
        if found is not None:
            report.first_bad = found
            return report
        frontier.add(event.leaf_hash)
        previous = event.chain_hash
        report.events, report.last_seq, report.chain_head = expected, expected, previous
        expected += 1
        while pending and pending[0].seq == event.seq:
            checkpoint = pending.pop(0)
            report.checkpoints_checked += 1
            if (checkpoint.chain_head, checkpoint.merkle_root) != (previous, frontier.root()):
                report.first_bad = ChainBreak(
                    agreed + 1,
                    f"events {agreed + 1}..{checkpoint.seq} do not match signed checkpoint "
                    f"{checkpoint.seq}: one of them was changed and the chain re-hashed",
                )
                return report
            agreed = checkpoint.seq
    if pending:
        last = pending[-1].seq
        report.first_bad = ChainBreak(
            expected,
            f"events {expected}..{last} are missing: signed checkpoint {last} covers them",
        )
        return report
    if head is not None and head != (report.last_seq, report.chain_head):
        if head[0] > report.last_seq:
            report.first_bad = ChainBreak(
                expected, f"events {expected}..{head[0]} are missing: the chain head records them"
            )
        else:
            report.problems.append(f"the chain head row ({head[0]}) does not match the events")
    return report
