"""The audit event and its stored form (pure). The hash chain (``chain.py``) covers these fields.

Also a signed checkpoint of the chain (what is signed and how it is checked is
``checkpoints.py``'s), and an AuditEvent search as asked (``search.py`` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["AuditEvent", "AuditQuery", "Checkpoint", "StoredEvent"]


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
