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
    ConsistencyProver,
    MerkleFrontier,
    canonical_bytes,
    hash_leaf,
    is_consistent,
    link,
)
from payerbridge.audit.checkpoints import signature_holds
from payerbridge.audit.model import Checkpoint, StoredEvent

__all__ = ["ChainReport", "event_break", "verify_chain"]


@dataclass
class ChainReport:
    events: int = 0
    checkpoints_checked: int = 0
    last_seq: int = 0
    chain_head: str = GENESIS
    first_bad: ChainBreak | None = None
    problems: list[str] = field(default_factory=list)  # beyond the first bad event
    proven: list[int] = field(default_factory=list)  # checkpoints held elsewhere, extended
    witnessed: int = 0  # the witness's checkpoints whose signatures hold
    signed_up_to: int = 0  # the newest event a checked checkpoint covers

    @property
    def holds(self) -> bool:
        return self.first_bad is None and not self.problems


def _stored_leaf(event: StoredEvent) -> str:
    return hash_leaf(canonical_bytes(event, event.detail))


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


@dataclass(frozen=True)
class _Trusted:
    checkpoint: Checkpoint
    witnessed: bool  # held by the witness (else only by the local checkpoint file)

    @property
    def name(self) -> str:
        seq = self.checkpoint.seq
        return (
            f"the witnessed checkpoint at {seq}" if self.witnessed else f"signed checkpoint {seq}"
        )


def _trusted(
    report: ChainReport,
    local: Sequence[Checkpoint],
    witnessed: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
) -> list[_Trusted]:
    """The checkpoints whose signatures hold, one per ``seq`` (witnessed first), in order;
    bad signatures and disagreeing pairs become problems."""
    trusted: dict[int, _Trusted] = {}
    kept: set[int] = set()
    for is_witnessed, source in ((True, witnessed), (False, local)):
        for checkpoint in source:
            where = "witnessed checkpoint" if is_witnessed else "checkpoint"
            if not signature_holds(checkpoint, public_key):
                report.problems.append(f"{where} at {checkpoint.seq}: its signature does not hold")
                continue
            if is_witnessed:
                report.witnessed += 1
            else:
                kept.add(checkpoint.seq)
            known = trusted.setdefault(checkpoint.seq, _Trusted(checkpoint, is_witnessed))
            signed = (known.checkpoint.chain_head, known.checkpoint.merkle_root)
            if signed != (checkpoint.chain_head, checkpoint.merkle_root):
                report.problems.append(f"two signed checkpoints at {checkpoint.seq} disagree")
    cut = sorted(seq for seq, t in trusted.items() if t.witnessed and seq not in kept)
    if len(cut) == 1:
        report.problems.append(
            f"checkpoint {cut[0]} is missing from the checkpoint file: the witness holds it"
        )
    elif cut:
        report.problems.append(
            f"checkpoints {_listed(cut)} are missing from the checkpoint file: "
            "the witness holds them"
        )
    return sorted(trusted.values(), key=lambda t: t.checkpoint.seq)


def _listed(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown if len(numbers) <= 10 else f"{shown} and {len(numbers) - 10} more"


def verify_chain(
    events: Iterable[StoredEvent],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
    *,
    head: tuple[int, str] | None = None,
    witnessed: Sequence[Checkpoint] = (),
    against: Sequence[Checkpoint] = (),
) -> ChainReport:
    """Check ``events`` (all of them, in sequence order) against ``checkpoints`` (the
    local file's) and ``witnessed`` ones (the witness's) signed by ``public_key``, and the
    stored chain ``head``; the report names the first bad event. The newest checkpoint
    in ``against`` (held elsewhere) is proven extended by the chain with an RFC 9162
    consistency proof, which needs ``head``; older ones there count as witnessed."""
    report = ChainReport()
    # The newest held checkpoint is proven; any older ones are checked as the walk passes
    # them, like the witness's (one proof per leaf stays cheap however many are given).
    held = sorted(against, key=lambda c: c.seq)
    pending = _trusted(report, checkpoints, [*witnessed, *held[:-1]], public_key)
    proofs = _Proofs(report, held[-1:], public_key, head)
    frontier, previous, expected, agreed = MerkleFrontier(), GENESIS, 1, 0
    for event in events:
        found = event_break(event, expected, previous)
        if found is not None:
            report.first_bad = found
            return report
        frontier.add(event.leaf_hash)
        proofs.add(event.leaf_hash)
        previous = event.chain_hash
        report.events, report.last_seq, report.chain_head = expected, expected, previous
        expected += 1
        while pending and pending[0].checkpoint.seq == event.seq:
            trusted = pending.pop(0)
            checkpoint = trusted.checkpoint
            report.checkpoints_checked += 1
            if (checkpoint.chain_head, checkpoint.merkle_root) != (previous, frontier.root()):
                report.first_bad = ChainBreak(
                    agreed + 1,
                    f"events {agreed + 1}..{checkpoint.seq} do not match {trusted.name}: "
                    "one of them was changed and the chain re-hashed",
                )
                return report
            agreed = report.signed_up_to = checkpoint.seq
    if pending:
        last = pending[-1]
        report.first_bad = ChainBreak(
            expected,
            f"events {expected}..{last.checkpoint.seq} are missing: {last.name} covers them",
        )
        return report
    proofs.finish(frontier)
    if report.first_bad is None and head is not None and head != (report.last_seq, previous):
        if head[0] > report.last_seq:
            report.first_bad = ChainBreak(
                expected, f"events {expected}..{head[0]} are missing: the chain head records them"
            )
        else:
            report.problems.append(f"the chain head row ({head[0]}) does not match the events")
    return report


class _Proofs:
    """RFC 9162 consistency proofs of the checkpoints held elsewhere, built while the
    events stream by (the tree's size is the stored head's)."""

    def __init__(
        self,
        report: ChainReport,
        against: Sequence[Checkpoint],
        public_key: Ed25519PublicKey,
        head: tuple[int, str] | None,
    ) -> None:
        self._report = report
        self._size = 0 if head is None else head[0]
        self._provers: list[tuple[Checkpoint, ConsistencyProver]] = []
        for checkpoint in against:
            if not signature_holds(checkpoint, public_key):
                report.problems.append(
                    f"the witnessed checkpoint at {checkpoint.seq}: its signature does not hold"
                )
            elif head is None:
                raise ValueError("proving a checkpoint needs the chain's head")
            elif checkpoint.seq <= self._size:
                self._provers.append((checkpoint, ConsistencyProver(checkpoint.seq, self._size)))
            else:
                self._provers.append((checkpoint, ConsistencyProver(0, 0)))

    def add(self, leaf: str) -> None:
        for _, prover in self._provers:
            if prover.second:
                prover.add(leaf)

    def finish(self, tree: MerkleFrontier) -> None:
        """Judge each proof over the tree of every event walked."""
        report = self._report
        for checkpoint, prover in self._provers:
            seq = checkpoint.seq
            if seq > tree.size:
                if report.first_bad is None:
                    report.first_bad = ChainBreak(
                        tree.size + 1,
                        f"events {tree.size + 1}..{seq} are missing: "
                        f"the witnessed checkpoint at {seq} covers them",
                    )
                continue
            if tree.size != self._size:
                continue  # the head row disagrees with the events: reported below
            proof = prover.proof()
            if is_consistent(seq, tree.size, checkpoint.merkle_root, tree.root(), proof):
                report.proven.append(seq)
            else:
                report.problems.append(
                    f"the witnessed checkpoint's root (at {seq}) is not consistent with the "
                    f"chain of {tree.size} events (RFC 9162 consistency proof)"
                )
