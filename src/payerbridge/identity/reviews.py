"""Review cases decided by a person: accept or reject once, reopen, and the case as its
reviewer sees it.

A case is changed only on the version its changer read (``ReviewCase.version``), in one
conditional write: of two reviewers deciding it at once one wins; the other, like a page
left open while someone else decided, is refused (``refusal_for``): 409 naming who
decided it and when, or 412 when the case changed otherwise (it was reopened). Nothing
decided is ever overwritten: a decision is undone only by reopening the case, on the
version that shows the decision, and every change is audited with its person as actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.ports import AuditLog
from payerbridge.compliance.clocks import Subject, SubjectType
from payerbridge.compliance.obligations import ANSWER_WITHIN
from payerbridge.errors import (
    Conflict,
    InvalidInput,
    Issue,
    NotFound,
    PayerBridgeError,
    PreconditionFailed,
)
from payerbridge.identity.model import (
    IdentityLink,
    LinkKind,
    ReviewCase,
    ReviewDecision,
    ShowCase,
    StandardRecord,
)
from payerbridge.identity.review_view import CaseView, case_view
from payerbridge.identity.unit import IdentityUnit
from payerbridge.timestamps import utc_iso
from payerbridge.types import MemberId

__all__ = [
    "CaseReader",
    "ShownCase",
    "decide_review",
    "refusal_for",
    "ReviewReopening",
    "reopen_review",
    "show_case",
]


def refusal_for(case: ReviewCase | None, review_id: str, version: int) -> PayerBridgeError | None:
    """Why a change made on ``version`` of the case may not be written; None when it may."""
    if case is None:
        return NotFound(f"no review case {review_id}")
    if not case.is_open:
        when = utc_iso(case.decided_at) if case.decided_at else "an unknown time"
        return Conflict(
            f"review case {review_id} was already decided: {case.status} by "
            f"{case.reviewer or 'an unknown reviewer'} at {when}"
        )
    if case.version != version:
        return PreconditionFailed(
            f"review case {review_id} changed after version {version} was read (it is at "
            f"version {case.version}: it was decided and reopened since); read it again"
        )
    return None


def decide_review(
    decision: ReviewDecision, uow: IdentityUnit, *, request_id: str | None
) -> ReviewCase:
    """Accept (naming one of the case's candidates) or reject an open case, audited with
    the reviewer as actor; the request it held is answered now (its one-business-day
    row in the clocks, settled in the same unit).

    An accepted case links the request to the member in the identity graph, and the
    requester's next identical ``$member-match`` is answered with that member."""
    queue = uow.identity
    review_id = decision.review_id
    case = queue.review(review_id)
    refused = refusal_for(case, review_id, decision.version)
    if refused is not None:
        raise refused
    assert case is not None
    _check_choice(case, decision)
    with uow:
        at = uow.now
        decided = queue.decide_review(uow, decision, at=at)
        if decided is not None:
            if decided.member_id is not None:
                queue.add_links(uow, [_reviewed_request(decided, decision.reviewer, at)])
            if uow.clocks is not None:
                subject = Subject(SubjectType.REVIEW, decided.id)
                uow.clocks.settle(uow, ANSWER_WITHIN, subject, done_at=at)
            uow.record(
                AuditEvent(
                    at=at,
                    actor=decision.reviewer,
                    action="identity.review",
                    entity_type="IdentityReview",
                    entity_id=decided.id,
                    outcome=decided.status,
                    request_id=request_id,
                    detail={
                        "decision": decided.decision_id,
                        "member": decided.member_id,
                        "version": decided.version,
                        # How long the case waited: the review queue's time to resolution.
                        "waited_seconds": round((at - decided.opened_at).total_seconds(), 3),
                    },
                )
            )
    if decided is None:  # another change came first: say which
        raise refusal_for(queue.review(review_id), review_id, decision.version) or Conflict(
            f"review case {review_id} changed while it was being decided; read it again"
        )
    return decided


def _check_choice(case: ReviewCase, decision: ReviewDecision) -> None:
    if decision.accept and decision.member_id not in case.candidate_ids:
        raise InvalidInput(
            "accepting a case names the member, one of its candidates",
            issues=[
                Issue(
                    f"member must be one of: {', '.join(case.candidate_ids)}",
                    "member",
                    "required" if decision.member_id is None else "value",
                )
            ],
        )
    if not decision.accept and decision.member_id is not None:
        raise InvalidInput(
            "a rejected case names no member",
            issues=[Issue("leave out member when rejecting a case", "member")],
        )


def _reviewed_request(case: ReviewCase, reviewer: str, at: datetime) -> IdentityLink:
    assert case.member_id is not None
    return IdentityLink(
        case.member_id,
        LinkKind.REVIEWED_REQUEST,
        LinkKind.MATCH_REQUEST_SYSTEM,
        case.request_key,
        case.client_id,
        case.decision_id,
        reviewer,
        at,
    )


@dataclass(frozen=True)
class ReviewReopening:
    """``by``'s undoing of the decision on the version of a case they read, and why."""

    review_id: str
    version: int
    by: str
    reason: str


def reopen_review(
    command: ReviewReopening, uow: IdentityUnit, *, request_id: str | None
) -> ReviewCase:
    """Undo a decision from now on, on the version that shows it: the case is open again
    and the request it accepted is no longer linked to the member (the requester's next
    identical request is under review again). Audited, with the decision undone."""
    review_id, version, by, reason = command.review_id, command.version, command.by, command.reason
    queue = uow.identity
    case = queue.review(review_id)
    if case is None:
        raise NotFound(f"no review case {review_id}")
    if case.is_open:
        raise Conflict(f"review case {review_id} is open: there is no decision to reopen")
    if case.version != version:
        raise PreconditionFailed(
            f"review case {review_id} changed after version {version} was read (it is at "
            f"version {case.version}); read it again"
        )
    with uow:
        at = uow.now
        reopened = queue.reopen_review(uow, review_id, version=version)
        if reopened is not None:
            if case.member_id is not None:
                queue.end_link(uow, _reviewed_request(case, by, at), at=at)
            uow.record(
                AuditEvent(
                    at=at,
                    actor=by,
                    action="identity.review.reopen",
                    entity_type="IdentityReview",
                    entity_id=review_id,
                    outcome="open",
                    request_id=request_id,
                    detail={
                        "undone": case.status,
                        "member": case.member_id,
                        "decided_by": case.reviewer,
                        "reason": reason,
                        "version": reopened.version,
                    },
                )
            )
    if reopened is None:
        raise PreconditionFailed(f"review case {review_id} changed while it was being reopened")
    return reopened


class CaseReader(Protocol):
    """What showing a case to its reviewer reads."""

    def review(self, review_id: str) -> ReviewCase | None: ...

    def decision(self, decision_id: str) -> dict[str, Any] | None: ...

    def review_request(self, review_id: str) -> StandardRecord | None:
        """The request as matching read it, kept with the case (None: not kept)."""
        ...

    def records_of(
        self, member_ids: Sequence[str]
    ) -> list[tuple[MemberId, StandardRecord, list[str]]]: ...


@dataclass(frozen=True)
class ShownCase:
    case: ReviewCase
    evidence: dict[str, Any] | None  # the decision's evidence (no demographics)
    view: CaseView  # the request and each candidate side by side (demographics)


def show_case(reader: CaseReader, audit: AuditLog, command: ShowCase) -> ShownCase:
    """The case, its evidence and the side-by-side view for the viewer; the view shows
    demographics, so each showing is audited (the case's id, never what it showed)."""
    review_id = command.review_id
    case = reader.review(review_id)
    if case is None:
        raise NotFound(f"no review case {review_id}")
    decision = reader.decision(case.decision_id)
    evidence = decision["evidence"] if decision else None
    members = [str(c["member"]) for c in (evidence or {}).get("candidates") or []]
    records = {str(member): record for member, record, _ in reader.records_of(members)}
    view = case_view(evidence or {}, reader.review_request(review_id), records, case.candidate_ids)
    audit.record(
        AuditEvent(
            at=command.at,
            actor=command.viewer,
            action="identity.review.view",
            entity_type="IdentityReview",
            entity_id=review_id,
            outcome="success",
            request_id=command.request_id,
            detail={"version": case.version},
        )
    )
    return ShownCase(case, evidence, view)
