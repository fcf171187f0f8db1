"""RFC 9162 (Certificate Transparency v2) inclusion and consistency proofs over the audit
chain's Merkle tree, against a signed checkpoint (pure but for the ``TreeNodes`` port).

Every node of a proof is the tree hash of a range of leaves (section 2.1.3.1 for the
audit path, 2.1.4.1 for consistency). A range is hashed as MTH defines it, splitting at
the largest power of two; a perfect, aligned subtree of ``2**h`` leaves with ``h`` one of
``NODE_LEVELS`` is stored (``audit_tree_nodes``, written as checkpoints are signed), so
a proof reads at most ``2**8`` rows per level of the tree: O(256 log n), never the chain.
A stored node is only a cache: the proof is checked against the signed root, so a node
changed in the database makes the proof fail, never pass.

A proof document is self-contained: the event's stored fields (their canonical bytes
give the leaf), its place, the audit path and the signed checkpoint. ``verify_document``
checks it with the public key alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from payerbridge.audit.chain import (
    canonical_bytes,
    consistency_ranges,
    hash_children,
    hash_leaf,
    is_consistent,
)
from payerbridge.audit.checkpoints import signature_holds
from payerbridge.audit.model import AuditEvent, Checkpoint, StoredEvent

__all__ = [
    "CONSISTENCY_KIND",
    "INCLUSION_KIND",
    "NODE_LEVELS",
    "ProofCheck",
    "TreeNodes",
    "consistency_document",
    "inclusion_document",
    "inclusion_path",
    "inclusion_ranges",
    "range_hash",
    "verify_document",
    "verify_inclusion",
]

INCLUSION_KIND = "payerbridge-audit-inclusion/1"
CONSISTENCY_KIND = "payerbridge-audit-consistency/1"
# Heights of the perfect subtrees kept: 256, 65,536, 2**24 and 2**32 leaves.
NODE_LEVELS = (8, 16, 24, 32)
_STEP = 8  # between two kept levels


class TreeNodes(Protocol):
    """The leaves and the kept subtree roots (``store/audit_reads.py``)."""

    def leaves(self, start: int, end: int) -> list[str]:
        """The leaf hashes of leaves ``[start, end)`` (leaf ``i`` is event ``i + 1``)."""
        ...

    def nodes(self, level: int, start: int, end: int) -> dict[int, str]:
        """The kept roots of subtrees ``[start, end)`` at ``level`` (by index; a
        subtree at level ``h`` and index ``i`` holds leaves ``[i * 2**h, (i+1) * 2**h)``)."""
        ...


def _largest_power_below(size: int) -> int:
    return 1 << ((size - 1).bit_length() - 1)


def range_hash(tree: TreeNodes, start: int, end: int) -> str:
    """MTH of leaves ``[start, end)`` (RFC 9162 2.1.1), from the kept nodes where it can."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:  # a perfect, aligned subtree
        return _subtree(tree, size.bit_length() - 1, start // size)
    k = _largest_power_below(size)
    return hash_children(range_hash(tree, start, start + k), range_hash(tree, start + k, end))


def _subtree(tree: TreeNodes, height: int, index: int, *, looked_up: bool = False) -> str:
    """The root of the perfect subtree ``index`` at ``height``: kept, or folded from the
    highest kept level below it (or the leaves), each missing one made the same way
    (``looked_up``: known not to be kept)."""
    kept = [level for level in NODE_LEVELS if level <= height]
    if height in NODE_LEVELS:
        found = {} if looked_up else tree.nodes(height, index, index + 1)
        if index in found:
            return found[index]
        kept.remove(height)
    below = kept[-1] if kept else 0
    width = 1 << (height - below)
    first = index * width
    if below == 0:
        hashes = tree.leaves(first, first + width)
        if len(hashes) != width:
            raise ValueError(f"leaves {first}..{first + width - 1} are not all stored")
    else:
        found = tree.nodes(below, first, first + width)
        hashes = [
            found[i] if i in found else _subtree(tree, below, i, looked_up=True)
            for i in range(first, first + width)
        ]
    return _fold(hashes)


def _fold(hashes: Sequence[str]) -> str:
    """The root of a perfect tree over ``hashes`` (a power of two of them)."""
    level = list(hashes)
    while len(level) > 1:
        level = [hash_children(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges of RFC 9162's ``PATH(index, D[size])``, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_below(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    return list(reversed(path))


def inclusion_path(tree: TreeNodes, index: int, size: int) -> list[str]:
    return [range_hash(tree, a, b) for a, b in inclusion_ranges(index, size)]


def verify_inclusion(index: int, size: int, leaf: str, path: Sequence[str], root: str) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` put ``leaf`` at ``index`` of the tree of
    ``size`` leaves whose root is ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, current = index, size - 1, leaf
    for node in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            current = hash_children(node, current)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            current = hash_children(current, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and current == root


def _event_json(event: StoredEvent) -> dict[str, Any]:
    """The event's stored fields, exactly as its leaf hashes them."""
    return {
        "seq": event.seq,
        "at": (event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "detail": event.detail,
    }


def inclusion_document(
    tree: TreeNodes, event: StoredEvent, checkpoint: Checkpoint
) -> dict[str, Any]:
    """The self-contained proof that ``event`` is in the tree ``checkpoint`` signs."""
    index = event.seq - 1
    return {
        "kind": INCLUSION_KIND,
        "event": _event_json(event),
        "leaf_hash": event.leaf_hash,
        "leaf_index": index,
        "tree_size": checkpoint.seq,
        "audit_path": inclusion_path(tree, index, checkpoint.seq),
        "checkpoint": checkpoint.to_json(),
        "key_id": checkpoint.key_id,
    }


def consistency_document(tree: TreeNodes, first: Checkpoint, second: Checkpoint) -> dict[str, Any]:
    """The proof that ``second``'s tree extends ``first``'s (RFC 9162 2.1.4)."""
    ranges = consistency_ranges(first.seq, second.seq)
    return {
        "kind": CONSISTENCY_KIND,
        "first": first.to_json(),
        "second": second.to_json(),
        "proof": [range_hash(tree, a, b) for a, b in ranges],
        "key_id": second.key_id,
    }


@dataclass(frozen=True)
class ProofCheck:
    """What checking a proof document found: ``holds``, else the first reason not."""

    holds: bool
    reason: str
    seq: int | None = None


def verify_document(document: dict[str, Any], public_key: Ed25519PublicKey) -> ProofCheck:
    """Check a proof document with the public key alone; a malformed one is ValueError."""
    try:
        if document.get("kind") == CONSISTENCY_KIND:
            return _verify_consistency(document, public_key)
        if document.get("kind") == INCLUSION_KIND:
            return _verify_inclusion(document, public_key)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"not a proof document ({type(error).__name__}: {error})") from error
    raise ValueError(f"not a proof document: kind is not {INCLUSION_KIND} or {CONSISTENCY_KIND}")


def _signed(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> str | None:
    if signature_holds(checkpoint, public_key):
        return None
    return f"the checkpoint at {checkpoint.seq} is not signed by this key"


def _verify_inclusion(document: dict[str, Any], public_key: Ed25519PublicKey) -> ProofCheck:
    checkpoint = Checkpoint.from_json(document["checkpoint"])
    event = document["event"]
    seq = int(event["seq"])
    if (problem := _signed(checkpoint, public_key)) is not None:
        return ProofCheck(False, problem, seq)
    leaf = hash_leaf(
        canonical_bytes(
            AuditEvent(
                at=datetime.fromisoformat(str(event["at"])),
                actor=str(event["actor"]),
                action=str(event["action"]),
                entity_type=str(event["entity_type"]),
                entity_id=str(event["entity_id"]),
                outcome=str(event["outcome"]),
                request_id=event["request_id"],
            ),
            event["detail"],
        )
    )
    index, size = int(document["leaf_index"]), int(document["tree_size"])
    if leaf != document["leaf_hash"]:
        return ProofCheck(False, f"event {seq}'s fields do not give its leaf hash", seq)
    if index != seq - 1 or size != checkpoint.seq:
        return ProofCheck(False, f"event {seq} is not leaf {index} of the signed tree", seq)
    path = [str(node) for node in document["audit_path"]]
    if not verify_inclusion(index, size, leaf, path, checkpoint.merkle_root):
        return ProofCheck(False, f"event {seq} is not in the tree the checkpoint signs", seq)
    return ProofCheck(True, f"event {seq} is in the signed tree of {size} events", seq)


def _verify_consistency(document: dict[str, Any], public_key: Ed25519PublicKey) -> ProofCheck:
    first = Checkpoint.from_json(document["first"])
    second = Checkpoint.from_json(document["second"])
    for checkpoint in (first, second):
        if (problem := _signed(checkpoint, public_key)) is not None:
            return ProofCheck(False, problem)
    proof = [str(node) for node in document["proof"]]
    if not is_consistent(first.seq, second.seq, first.merkle_root, second.merkle_root, proof):
        return ProofCheck(False, f"the tree at {second.seq} does not extend the one at {first.seq}")
    return ProofCheck(True, f"the tree at {second.seq} extends the one at {first.seq}")
