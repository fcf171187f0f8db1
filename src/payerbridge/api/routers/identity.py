"""Operators' view of identity: decisions with evidence, the review queue, the identity graph.

Every route here is for operators (evidence names member ids, a case shows the request
and its candidates' demographics, and the graph holds other payers' identifiers for our
members), but one: the requester's side of reviews, the exchanges waiting on an old
payer's reviewer, which a client sees of its own.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep, SubmitterDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import ExchangeUnitDep, IdentityUnitDep
from payerbridge.bootstrap import utcnow
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.errors import InvalidInput, Issue, NotFound, PreconditionRequired
from payerbridge.exchange.steps.review import PartnerReviewWait, partner_review_wait
from payerbridge.identity.model import (
    QueuePosition,
    ReviewCase,
    ReviewDecision,
    ReviewQuery,
    ShowCase,
)
from payerbridge.identity.review_queue import decode_position, encode_position
from payerbridge.identity.reviews import ReviewReopening, show_case
from payerbridge.identity.reviews import decide_review as decide
from payerbridge.identity.reviews import reopen_review as reopen
from payerbridge.identity.service import MergeMembers, SplitMember, merge_members, split_members
from payerbridge.logging import current_request_id
from payerbridge.timestamps import utc_iso
from payerbridge.types import MemberId

__all__ = ["router"]

router = APIRouter(prefix="/identity", default_response_class=JsonResponse, tags=["identity"])


@router.get("/decisions/{decision_id}")
def get_decision(decision_id: str, uow: IdentityUnitDep, _operator: OperatorDep) -> Any:
    """A match decision: outcome, requester, model and policy versions, and the evidence."""
    decision = uow.identity.decision(decision_id)
    if decision is None:
        raise NotFound(f"no identity decision {decision_id}")
    return decision


# The list's query parameters: any other is refused, not silently ignored.
_REVIEW_LIST_PARAMETERS = frozenset({"status", "policy", "reason", "older-than", "_count", "page"})
_DURATION = re.compile(r"^(\d{1,5})([mhd])$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _only_known(request: Request, known: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s): {', '.join(unknown)}",
            issues=[
                Issue(f"{name} is not a parameter here; use {', '.join(sorted(known))}", name)
                for name in unknown
            ],
        )


def _age(older_than: str | None) -> timedelta | None:
    if older_than is None:
        return None
    found = _DURATION.match(older_than)
    if found is None:
        raise InvalidInput(
            "older-than is a number of minutes, hours or days: 30m, 4h, 2d",
            issues=[Issue(f"older-than {older_than!r} is not like 30m, 4h or 2d", "older-than")],
        )
    return timedelta(**{_DURATION_UNITS[found.group(2)]: int(found.group(1))})


def review_public(case: ReviewCase, now: datetime, obligations: ObligationSet) -> dict[str, Any]:
    """A case as lists show it: no demographics, its age, whether it is overdue in the
    queue, and where its answer stands against the rule's clock (the requester waits for
    it: one business day from the request, by the plan's calendar)."""
    shown = case.to_dict()
    for name in ("opened_at", "decided_at", "due_at"):
        if shown[name] is not None:
            shown[name] = utc_iso(shown[name])
    shown["age_seconds"] = int((now - case.opened_at).total_seconds())
    shown["overdue"] = case.is_open and case.due_at is not None and case.due_at < now
    shown["answer"] = answer_clock(case, now, obligations)
    return shown


def answer_clock(case: ReviewCase, now: datetime, obligations: ObligationSet) -> dict[str, Any]:
    """The responder's deadline for the request that opened ``case``: when its answer is
    due, and whether it was met, missed or is at risk (``compliance.obligations``)."""
    found = obligations.answer(case.opened_at, case.answered_at, now)
    return {
        "obligation": found.obligation,
        "due_at": None if found.due_at is None else utc_iso(found.due_at),
        "standing": found.standing.value,
        "why": found.why,
    }


class ReviewListQuery(BaseModel):
    """The review list's query parameters (the names are the API's)."""

    status: Literal["open", "accepted", "rejected", "any"] = "open"
    policy: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    reason: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    older_than: str | None = Field(default=None, alias="older-than", max_length=8)
    count: int = Field(default=50, alias="_count", ge=1, le=500)
    page: str | None = Field(default=None, max_length=400)


@router.get("/reviews")
def list_reviews(
    request: Request,
    uow: IdentityUnitDep,
    _operator: OperatorDep,
    asked: Annotated[ReviewListQuery, Query()],
) -> dict[str, Any]:
    """Review cases in the queue's order, oldest and riskiest first (open ones by default;
    ``identity.review_queue``): filtered by policy, by a reason they were opened for and
    by age; ``next`` is the following page's URL while there are more."""
    _only_known(request, _REVIEW_LIST_PARAMETERS)
    now = utcnow()
    age = _age(asked.older_than)
    count = asked.count
    query = ReviewQuery(
        status=None if asked.status == "any" else asked.status,
        policy=asked.policy,
        reason=asked.reason,
        opened_before=None if age is None else now - age,
        after=None if asked.page is None else decode_position(asked.page),
        limit=count + 1,
    )
    cases = uow.identity.reviews(query)
    following = None
    if len(cases) > count:
        cases = cases[:count]
        last = cases[-1]
        assert last.due_at is not None
        position = encode_position(QueuePosition(last.due_at, last.id))
        following = str(request.url.include_query_params(page=position))
    return {
        "reviews": [review_public(case, now, uow.obligations) for case in cases],
        "count": len(cases),
        "next": following,
    }


def review_etag(case: ReviewCase) -> str:
    """The case's version as a weak entity tag, as FHIR gives a resource's version."""
    return f'W/"{case.version}"'


@router.get("/reviews/{review_id}")
def get_review(
    review_id: str, response: Response, uow: IdentityUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """A case as its reviewer needs it: the evidence, and the request and each candidate
    side by side (demographics: operators only, the showing audited), with its ``ETag``
    (the version a decision must name)."""
    shown = show_case(
        uow.identity,
        uow.audit,
        ShowCase(
            review_id[:64], viewer=operator.client_id, at=utcnow(), request_id=current_request_id()
        ),
    )
    response.headers["ETag"] = review_etag(shown.case)
    return {
        **review_public(shown.case, utcnow(), uow.obligations),
        "evidence": shown.evidence,
        "comparison": shown.view.to_dict(),
    }


class ReviewDecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["accept", "reject"]
    member: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    reviewer: str = Field(min_length=1, max_length=200)
    # The version the decision was made on, if not sent as If-Match.
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)


_ENTITY_TAG = re.compile(r'^(?:W/)?"(\d{1,10})"$')


def version_sent(if_match: str | None, version: int | None) -> int:
    """The version a change was made on: the If-Match header's or the body's, which
    must agree when both are sent; 428 when neither is."""
    from_header = None
    if if_match is not None:
        found = _ENTITY_TAG.match(if_match.strip())
        if found is None:
            raise InvalidInput(
                'If-Match names one version as the ETag gave it, such as W/"1"',
                issues=[Issue(f"If-Match {if_match[:40]!r} is not one entity tag", "If-Match")],
            )
        from_header = int(found.group(1))
    if from_header is not None and version is not None and from_header != version:
        raise InvalidInput(
            "If-Match and version name different versions",
            issues=[Issue(f"If-Match says {from_header}, version says {version}", "version")],
        )
    chosen = from_header if from_header is not None else version
    if chosen is None:
        text = (
            "say which version of the case the change was made on: If-Match with the ETag "
            "of GET /identity/reviews/{id}, or version in the body"
        )
        raise PreconditionRequired(text, issues=[Issue(text, "If-Match", "required")])
    return chosen


# A case changes only on the version its decider read (ADR 0036).
_VERSIONED: dict[int | str, dict[str, Any]] = {
    412: {"description": "The case changed since that version was read: read it again"},
    428: {"description": "No version: send If-Match with the case's ETag, or version"},
}


IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=100)]


def _decision(
    review_id: str, body: ReviewDecisionBody, operator: OperatorDep, if_match: IfMatch = None
) -> ReviewDecision:
    """The decision as the use case takes it, on the version read."""
    return ReviewDecision(
        review_id=review_id[:64],
        version=version_sent(if_match, body.version),
        accept=body.decision == "accept",
        member_id=None if body.member is None else MemberId(body.member),
        reviewer=f"{operator.client_id}:{body.reviewer}",
        reason=body.reason,
    )


@router.post("/reviews/{review_id}/$decide", responses=_VERSIONED)
def decide_review(
    decision: Annotated[ReviewDecision, Depends(_decision)],
    response: Response,
    uow: IdentityUnitDep,
) -> dict[str, Any]:
    """Accept (naming the member, one of the case's candidates) or reject a case, on the
    version read (If-Match or ``version``): 409 once it is decided, 412 when it changed
    since that version."""
    decided = decide(decision, uow, request_id=current_request_id())
    response.headers["ETag"] = review_etag(decided)
    return review_public(decided, utcnow(), uow.obligations)


class ReviewReopenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=2000)
    reviewer: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)


def _reopening(
    review_id: str, body: ReviewReopenBody, operator: OperatorDep, if_match: IfMatch = None
) -> ReviewReopening:
    """The reopening as the use case takes it, on the version that shows the decision."""
    return ReviewReopening(
        review_id[:64],
        version_sent(if_match, body.version),
        f"{operator.client_id}:{body.reviewer}",
        body.reason,
    )


@router.post("/reviews/{review_id}/$reopen", responses=_VERSIONED)
def reopen_review(
    reopening: Annotated[ReviewReopening, Depends(_reopening)],
    response: Response,
    uow: IdentityUnitDep,
) -> dict[str, Any]:
    """Undo a decision from now on, on the version that shows it: the case is open again
    and its request no longer answered with the member it accepted."""
    reopened = reopen(reopening, uow, request_id=current_request_id())
    response.headers["ETag"] = review_etag(reopened)
    return review_public(reopened, utcnow(), uow.obligations)


@router.get("/waiting-at-partners")
def waiting_at_partners(
    request: Request,
    uow: ExchangeUnitDep,
    caller: SubmitterDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The requester's side: our exchanges (a client's own; an operator's, everyone's)
    waiting on an old payer's reviewer, the longest waiting first: since when, the
    partner, its review case, when we ask again and until when we wait (ADR 0013)."""
    _only_known(request, frozenset({"_count", "_offset"}))
    total, records = uow.exchanges.waiting_on_partner_reviewers(
        client_id=None if caller.is_operator else caller.client_id, limit=count, offset=offset
    )
    now = utcnow()
    policy = uow.retry_policy
    return {
        "total": total,
        "offset": offset,
        "count": len(records),
        "items": [wait_public(partner_review_wait(record, policy, now)) for record in records],
    }


def wait_public(wait: PartnerReviewWait) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return None if value is None else utc_iso(value)

    return {
        "exchange": wait.exchange_id,
        "partner": wait.partner_id,
        "client": wait.client_id,
        "since": when(wait.since),
        "waited_seconds": None if wait.waited is None else int(wait.waited.total_seconds()),
        "next_ask_at": when(wait.next_ask_at),
        "deadline_at": when(wait.deadline_at),
        "partner_case": wait.case_reference,
        "partner_text": wait.text,
    }


@router.get("/members/{member_id}/links")
def member_links(member_id: str, uow: IdentityUnitDep, _operator: OperatorDep) -> dict[str, Any]:
    """The member's identity graph: UMBs, other payers' ids, reviewed requests, merges."""
    links = uow.identity.links_of(MemberId(member_id))
    return {"member": member_id, "links": [link.to_dict() for link in links]}


class MergeChange(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    into: str | None = Field(default=None, max_length=64)
    reviewer: str = Field(min_length=1, max_length=200)


@router.post("/members/{member_id}/$merge")
def merge(
    member_id: str, body: MergeChange, uow: IdentityUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """Mark ``member_id`` as a duplicate of ``into``: matching answers with ``into`` from now
    on, and the retired id keeps its links and lineage."""
    if body.into is None:
        raise InvalidInput(
            "$merge names the surviving member",
            issues=[Issue("into is required", "into", "required")],
        )
    command = MergeMembers(
        MemberId(member_id),
        MemberId(body.into),
        by=f"{operator.client_id}:{body.reviewer}",
        request_id=current_request_id(),
    )
    link = merge_members(command, uow)
    return link.to_dict()


@router.post("/members/{member_id}/$split")
def split(
    member_id: str, body: MergeChange, uow: IdentityUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """Undo a merge from now on: ``member_id`` is its own member again."""
    command = SplitMember(
        MemberId(member_id),
        by=f"{operator.client_id}:{body.reviewer}",
        request_id=current_request_id(),
    )
    into = split_members(command, uow)
    return {"member": member_id, "split_from": into}


@router.get("/links")
def find_links(
    uow: IdentityUnitDep,
    _operator: OperatorDep,
    identifier: Annotated[str, Query(min_length=1, max_length=700)],
) -> dict[str, Any]:
    """Which of our members an identifier (``system|value``, or a bare value) names."""
    system, _, value = identifier.rpartition("|")
    links = uow.identity.members_by_identifier(value, system if "|" in identifier else None)
    return {"identifier": identifier, "links": [link.to_dict() for link in links]}
