"""The audit event and its stored form (pure): the hash chain over its fields, a signed
checkpoint of the chain as kept (what is signed and how it is checked is
``checkpoints.py``'s; proofs are ``chain.py``'s), an AuditEvent search as asked
(``search.py`` reads it), and a refused call and its counted window (``refusals.py``
decides them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditQuery",
    "ChainedEvent",
    "Checkpoint",
    "EventFields",
    "MerkleFrontier",
    "Refusal",
    "RefusalWindow",
    "StoredCheckpoint",
    "StoredEvent",
    "canonical_bytes",
    "detail_text",
    "hash_children",
    "hash_leaf",
    "leaf_hash",
    "link",
    "link_events",
    "stored_leaf_hash",
    "window_of",
]


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    actor: str
    action: str  # e.g. "exchange.transition", "member-match", "partner.register"
    entity_type: str
    entity_id: str
    outcome: str  # "success", "failure", or a decision such as "match"
    request_id: str | None = None
    # Internal ids, codes and hashes only: no names, birth dates or member identifiers.
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    """An audit row as stored: its fields (``detail`` as the stored text) and its place
    in the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    outcome: str
    request_id: str | None
    detail: str | None
    leaf_hash: str
    prev_hash: str
    chain_hash: str


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    chain_head: str
    merkle_root: str
    at: datetime
    key_id: str
    signature: str  # base64url, over ``body()``

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "chain_head": self.chain_head,
            "merkle_root": self.merkle_root,
            "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Checkpoint:
        return cls(
            seq=int(value["seq"]),
            chain_head=str(value["chain_head"]),
            merkle_root=str(value["merkle_root"]),
            at=datetime.fromisoformat(str(value["at"])),
            key_id=str(value["key_id"]),
            signature=str(value["signature"]),
        )


@dataclass(frozen=True)
class AuditQuery:
    """``entity``: (type, id); ``start`` inclusive, ``end`` exclusive; ``before``: the
    page continues with events older than this ``seq``."""

    entity: tuple[str, str] | None = None
    agent: str | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    count: int = 50
    before: int | None = None


# The hash chain and its Merkle tree over the stored fields (ADR 0007): what a stored
# event's ``leaf_hash``, ``prev_hash`` and ``chain_hash`` are, the writer's and the
# verifier's alike. Each event is a leaf: ``leaf_hash = SHA-256(0x00 || canonical
# bytes)`` as in RFC 6962; ``chain_hash(n) = SHA-256(0x01 || chain_hash(n-1) ||
# leaf_hash(n))`` from ``GENESIS``. Proofs and checks over them are ``chain.py``'s.

GENESIS = hashlib.sha256(b"").hexdigest()  # RFC 6962's hash of the empty tree

_LEAF = b"\x00"
_NODE = b"\x01"


def detail_text(detail: dict[str, object]) -> str | None:
    """The ``detail`` as it is stored and hashed: JSON with sorted keys, or None if empty."""
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode() if detail else None


class EventFields(Protocol):
    """The fields of an event the chain hashes, as written (``AuditEvent``) or as stored
    (``StoredEvent``); its detail is hashed as the text stored, given apart."""

    @property
    def at(self) -> datetime: ...

    @property
    def actor(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def entity_type(self) -> str: ...

    @property
    def entity_id(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def request_id(self) -> str | None: ...


def canonical_bytes(event: EventFields, detail: str | None) -> bytes:
    """The event's fields as one canonical JSON document (sorted keys, UTC instant with
    microseconds): the same bytes from the writer's values and from the stored row."""
    at = event.at
    instant = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return orjson.dumps(
        {
            "action": event.action,
            "actor": event.actor,
            "at": instant.isoformat(timespec="microseconds"),
            "detail": detail,
            "entity_id": event.entity_id,
            "entity_type": event.entity_type,
            "outcome": event.outcome,
            "request_id": event.request_id,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def leaf_hash(event: AuditEvent) -> str:
    """The event's RFC 6962 leaf hash (hex)."""
    return stored_leaf_hash(event, detail_text(event.detail))


def stored_leaf_hash(event: AuditEvent, detail: str | None) -> str:
    """The leaf hash of ``event`` stored with ``detail`` as its detail's text (the writer
    serialises a detail once, for the row and the hash)."""
    return hash_leaf(canonical_bytes(event, detail))


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


@dataclass
class MerkleFrontier:
    """The RFC 6962 Merkle tree hash over a growing list of leaves, kept as the roots of
    its perfect subtrees (largest first): one per set bit of ``size``."""

    size: int = 0
    subtrees: list[str] = field(default_factory=list)

    def add(self, leaf: str) -> None:
        self.add_nodes(leaf)

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
            self.subtrees.append(hash_children(left, right))
            size //= 2
            height += 1
            made.append((height, (self.size >> height) - 1, self.subtrees[-1]))
        return made

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


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint with the Merkle frontier the next one continues from, and the kept
    subtree roots (height, index, root) completed since the checkpoint before it
    (``proofs.NODE_LEVELS``: what proofs are built from)."""

    checkpoint: Checkpoint
    frontier: MerkleFrontier
    nodes: tuple[tuple[int, int, str], ...] = ()


@dataclass(frozen=True)
class Refusal:
    """One refused call (or one refused member of a bulk request): who, what, why, when."""

    client_id: str
    operation: str  # "member-match" | "bulk-member-match"
    reason: str  # refusals.refusal_reason's code
    at: datetime


@dataclass(frozen=True)
class RefusalWindow:
    """A closed window's count: ``start`` inclusive, ``end`` exclusive."""

    client_id: str
    operation: str
    reason: str
    start: datetime
    end: datetime
    count: int


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_of(at: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """The refusal window ``at`` falls in: multiples of ``length`` from the epoch, so
    that every process puts one instant in the same window."""
    if length <= timedelta(0):
        raise ValueError("a refusal window is longer than 0")
    step = length // timedelta(microseconds=1)
    since = (at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    start = _EPOCH + timedelta(microseconds=since - since % step)
    return start, start + length
