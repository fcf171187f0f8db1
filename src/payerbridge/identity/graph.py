"""The identity graph and the review queue as data: links of our members to the
identifiers others know them by, and review cases. Stored by ``store.identity``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.types import ClientId, MemberId

__all__ = ["IdentityLink", "LinkKind", "ReviewCase"]


class LinkKind:
    """Kinds of identity-graph links (strings in the database)."""

    # The system of REVIEWED_REQUEST links: their value is the request's keyed hash.
    MATCH_REQUEST_SYSTEM = "urn:payerbridge:member-match-request"
    # The system of MERGED_INTO links: their value is our surviving member's id.
    MEMBER_SYSTEM = "urn:payerbridge:member"

    UMB = "umb"  # the Unique Member Bundle identifier we handed out at $member-match
    LINKED_COVERAGE = "linked-coverage"  # another payer's member id (CoverageToLink, mm-4)
    LINKED_SUBSCRIBER = "linked-subscriber"  # another payer's subscriber id
    REVIEWED_REQUEST = "reviewed-request"  # a reviewer accepted this request for the member
    MERGED_INTO = "merged-into"  # this member id now means ``value`` (a duplicate merged)


@dataclass(frozen=True)
class ReviewCase:
    id: str
    decision_id: str
    status: str  # open | accepted | rejected
    client_id: ClientId
    request_key: str  # keyed hash of the request: the same request finds its case again
    candidate_ids: tuple[str, ...]
    opened_at: datetime
    member_id: MemberId | None
    reviewer: str | None
    reason: str | None
    decided_at: datetime | None
    # Why the engine opened the case (the decision's ``review_reason``).
    opened_because: str | None = None
    # Each change of the case (a decision, a reopening) adds one: a change sent on an
    # older version was made on a stale page (``identity.reviews``).
    version: int = 1
    # Its place in the queue (``identity.review_queue``); None on a case opened before
    # cases were ranked, which comes first.
    risk: float | None = None
    due_at: datetime | None = None
    policy: str | None = None  # the match policy's name: single_exchange, bulk

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def answered_at(self) -> datetime | None:
        """When the request that opened it could be answered: its decision, once decided."""
        return None if self.is_open else self.decided_at

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons it was opened for, one by one."""
        return tuple(r.strip() for r in (self.opened_because or "").split(",") if r.strip())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "decision": self.decision_id,
            "status": self.status,
            "requester": self.client_id,
            "candidates": list(self.candidate_ids),
            "opened_at": self.opened_at,
            "opened_because": self.opened_because,
            "member": self.member_id,
            "reviewer": self.reviewer,
            "reason": self.reason,
            "decided_at": self.decided_at,
            "version": self.version,
            "risk": self.risk,
            "due_at": self.due_at,
            "policy": self.policy,
        }


@dataclass(frozen=True)
class IdentityLink:
    """One edge of the identity graph: our member is known as ``system|value``."""

    member_id: MemberId
    kind: str  # umb | linked-coverage | linked-subscriber | reviewed-request | merged-into
    system: str
    value: str
    assigner: str | None
    decision_id: str | None
    recorded_by: str
    valid_from: datetime
    valid_to: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member_id,
            "kind": self.kind,
            "system": self.system,
            "value": self.value,
            "assigner": self.assigner,
            "decision": self.decision_id,
            "recorded_by": self.recorded_by,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
        }
