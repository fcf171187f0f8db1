"""The audit hash chain and its Merkle tree (pure): how an event is hashed, linked and checked.

Each event is a leaf: ``leaf_hash = SHA-256(0x00 || canonical bytes)`` as in RFC 6962,
over a canonical JSON of its stored fields (the ``detail`` as the text stored). Events
are linked in one gap-free sequence: ``chain_hash(n) = SHA-256(0x01 || chain_hash(n-1) ||
leaf_hash(n))``, from ``GENESIS`` (the hash of the empty tree). Checkpoints sign the
chain head with the RFC 6962 Merkle tree hash over every leaf so far, which
``MerkleFrontier`` keeps in O(log n) as leaves arrive. ADR 0007 gives the reasons.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from payerbridge.audit.model import AuditEvent

__all__ = [
    "GENESIS",
    "ChainedEvent",
    "ChainBreak",
    "MerkleFrontier",
    "canonical_bytes",
    "detail_text",
    "leaf_hash",
    "link",
    "link_events",
]

GENESIS = hashlib.sha256(b"").hexdigest()  # RFC 6962's hash of the empty tree

_LEAF = b"\x00"
_NODE = b"\x01"


def detail_text(detail: dict[str, object]) -> str | None:
    """The ``detail`` as it is stored and hashed: JSON with sorted keys, or None if empty."""
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode() if detail else None


def canonical_bytes(
    *,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    outcome: str,
    request_id: str | None,
    detail: str | None,
) -> bytes:
    """The event's fields as one canonical JSON document (sorted keys, UTC instant with
    microseconds): the same bytes from the writer's values and from the stored row."""
    instant = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return orjson.dumps(
        {
            "action": action,
            "actor": actor,
            "at": instant.isoformat(timespec="microseconds"),
            "detail": detail,
            "entity_id": entity_id,
            "entity_type": entity_type,
            "outcome": outcome,
            "request_id": request_id,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def leaf_hash(event: AuditEvent) -> str:
    """The event's RFC 6962 leaf hash (hex)."""
    return hash_leaf(
        canonical_bytes(
            at=event.at,
            actor=event.actor,
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            outcome=event.outcome,
            request_id=event.request_id,
            detail=detail_text(event.detail),
        )
    )


def hash_leaf(data: bytes) -> str:
    return hashlib.sha256(_LEAF + data).hexdigest()


def hash_children(left: str, right: str) -> str:
    """An RFC 6962 interior node over two hex hashes."""
    return hashlib.sha256(_NODE + bytes.fromhex(left) + bytes.fromhex(right)).hexdigest()


def link(previous: str, leaf: str) -> str:
    """The chain hash of an event: its leaf linked to the chain hash before it."""
    return hash_children(previous, leaf)


@dataclass(frozen=True)
class ChainedEvent:
    """An event's place in the chain, as written beside it."""

    seq: int
    leaf_hash: str
    prev_hash: str
    chain_hash: str


def link_events(head_seq: int, head_hash: str, leaves: Iterable[str]) -> list[ChainedEvent]:
    """Chain ``leaves`` after the head (``head_seq``, ``head_hash``), in order."""
    chained = []
    seq, previous = head_seq, head_hash
    for leaf in leaves:
        seq += 1
        current = link(previous, leaf)
        chained.append(ChainedEvent(seq, leaf, previous, current))
        previous = current
    return chained


@dataclass(frozen=True)
class ChainBreak:
    """The first event that does not check out, and why (no event content)."""

    seq: int
    reason: str


@dataclass
class MerkleFrontier:
    """The RFC 6962 Merkle tree hash over a growing list of leaves, kept as the roots of
    its perfect subtrees (largest first): one per set bit of ``size``."""

    size: int = 0
    subtrees: list[str] = field(default_factory=list)

    def add(self, leaf: str) -> None:
        self.subtrees.append(leaf)
        self.size += 1
        # Merge equal-sized subtrees: one merge per trailing zero bit of the new size.
        size = self.size
        while size % 2 == 0:
            right = self.subtrees.pop()
            left = self.subtrees.pop()
            self.subtrees.append(hash_children(left, right))
            size //= 2

    def root(self) -> str:
        """MTH over the leaves so far (RFC 6962 section 2.1): the subtrees folded from
        the smallest, each the right child of the one before it."""
        if not self.subtrees:
            return GENESIS
        current = self.subtrees[-1]
        for left in reversed(self.subtrees[:-1]):
            current = hash_children(left, current)
        return current

    def copy(self) -> MerkleFrontier:
        return MerkleFrontier(self.size, list(self.subtrees))
