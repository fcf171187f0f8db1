"""The audit room's proof use cases: an event's inclusion proof, two checkpoints'
consistency proof, and the proofs a partner may ask for, of the events its own requests
caused (``GET /audit/proofs``, ``payerbridge audit prove``).

Proofs are against the newest checkpoint the database records unless one is named; an
event after it is pending: the scheduled checkpoint signs it within 75 s (ADR 0007).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payerbridge.audit.model import Checkpoint
from payerbridge.audit.ports import AuditReader
from payerbridge.audit.proofs import consistency_document, inclusion_document
from payerbridge.errors import Conflict, InvalidInput, Issue, NotFound

__all__ = ["MAX_PROOFS", "RequestProofs", "prove_consistency", "prove_event", "prove_request"]

MAX_PROOFS = 100  # one request causes a handful of events; a page of proofs, no more


def _checkpoint(reader: AuditReader, seq: int | None) -> Checkpoint:
    found = reader.checkpoint(seq)
    if found is None:
        text = "no checkpoint is signed yet" if seq is None else f"no checkpoint at {seq}"
        raise NotFound(text, issues=[Issue(text, "checkpoint", "not-found")])
    return found


def prove_event(reader: AuditReader, seq: int, *, checkpoint: int | None = None) -> dict[str, Any]:
    """The inclusion proof of event ``seq`` in the tree of ``checkpoint`` (the newest)."""
    event = reader.event(seq)
    if event is None:
        raise NotFound(f"there is no audit event {seq}", issues=[Issue("no such event", "event")])
    signed = _checkpoint(reader, checkpoint)
    if signed.seq < seq:
        raise Conflict(
            f"event {seq} is after the checkpoint at {signed.seq}: prove it against a "
            "later one (the scheduled checkpoint signs it within 75 s)"
        )
    return inclusion_document(reader, event, signed)


def prove_consistency(
    reader: AuditReader, first: int, *, second: int | None = None
) -> dict[str, Any]:
    """The proof that the tree of checkpoint ``second`` (the newest) extends ``first``'s."""
    older, newer = _checkpoint(reader, first), _checkpoint(reader, second)
    if older.seq > newer.seq:
        text = f"the checkpoint at {first} is newer than the one at {newer.seq}"
        raise InvalidInput(text, issues=[Issue(text, "since", "value")])
    return consistency_document(reader, older, newer)


@dataclass(frozen=True)
class RequestProofs:
    """The proofs of a request's events under the newest checkpoint; ``pending``: the
    events it does not cover yet; ``consistency``: from the checkpoint the caller holds."""

    request_id: str
    checkpoint: Checkpoint | None
    proofs: list[dict[str, Any]]
    pending: list[int]
    consistency: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "checkpoint": self.checkpoint.to_json() if self.checkpoint else None,
            "proofs": self.proofs,
            "pending": self.pending,
            "consistency": self.consistency,
        }


def prove_request(
    reader: AuditReader, request_id: str, *, viewer: str | None, since: int | None = None
) -> RequestProofs:
    """Proofs of the events request ``request_id`` caused that ``viewer`` may see: the
    ones it is the actor of (None, an auditor: every one). None of them: NotFound, as
    for a request of someone else's."""
    events = reader.by_request(request_id, actor=viewer, limit=MAX_PROOFS)
    if not events:
        text = f"no audit event of yours carries request id {request_id[:128]}"
        raise NotFound(text, issues=[Issue(text, "request", "not-found")])
    latest = reader.checkpoint()
    covered = [e for e in events if latest is not None and e.seq <= latest.seq]
    proofs = [inclusion_document(reader, e, latest) for e in covered] if latest else []
    consistency = None
    if since is not None:
        consistency = prove_consistency(reader, since)
    return RequestProofs(
        request_id,
        latest,
        proofs,
        [e.seq for e in events if latest is None or e.seq > latest.seq],
        consistency,
    )
