"""Operators' view of identity: decisions with evidence, the review queue, the identity graph.

Every route here is for operators: evidence names member ids and the graph holds
other payers' identifiers for our members.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep, PlatformDep
from payerbridge.api.responses import JsonResponse
from payerbridge.bootstrap import utcnow
from payerbridge.errors import InvalidInput, Issue, NotFound
from payerbridge.identity.service import decide_review as decide
from payerbridge.identity.service import merge_members, split_members
from payerbridge.logging import current_request_id
from payerbridge.types import MemberId

__all__ = ["router"]

router = APIRouter(prefix="/identity", default_response_class=JsonResponse, tags=["identity"])


@router.get("/decisions/{decision_id}")
def get_decision(decision_id: str, platform: PlatformDep, _operator: OperatorDep) -> Any:
    """A match decision: outcome, requester, model and policy versions, and the evidence."""
    decision = platform.identity.decision(decision_id)
    if decision is None:
        raise NotFound(f"no identity decision {decision_id}")
    return decision


@router.get("/reviews")
def list_reviews(
    platform: PlatformDep,
    _operator: OperatorDep,
    status: Annotated[Literal["open", "accepted", "rejected"] | None, Query()] = "open",
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Review cases, oldest first (open ones by default)."""
    cases = platform.identity.reviews(status=status, limit=count, offset=offset)
    return {"reviews": [case.to_dict() for case in cases], "count": len(cases), "offset": offset}


@router.get("/reviews/{review_id}")
def get_review(review_id: str, platform: PlatformDep, _operator: OperatorDep) -> dict[str, Any]:
    """A case with its decision's evidence: what a reviewer needs to decide."""
    case = platform.identity.review(review_id)
    if case is None:
        raise NotFound(f"no review case {review_id}")
    decision = platform.identity.decision(case.decision_id)
    return {**case.to_dict(), "evidence": decision["evidence"] if decision else None}


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["accept", "reject"]
    member: str | None = Field(default=None, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    reviewer: str = Field(min_length=1, max_length=200)


@router.post("/reviews/{review_id}/$decide")
def decide_review(
    review_id: str, body: ReviewDecision, platform: PlatformDep, operator: OperatorDep
) -> dict[str, Any]:
    """Accept (naming the member, one of the case's candidates) or reject a case."""
    decided = decide(
        platform.identity,
        platform.transactions,
        review_id,
        accept=body.decision == "accept",
        member_id=None if body.member is None else MemberId(body.member),
        reviewer=f"{operator.client_id}:{body.reviewer}",
        reason=body.reason,
        at=utcnow(),
        request_id=current_request_id(),
    )
    return decided.to_dict()


@router.get("/members/{member_id}/links")
def member_links(member_id: str, platform: PlatformDep, _operator: OperatorDep) -> dict[str, Any]:
    """The member's identity graph: UMBs, other payers' ids, reviewed requests, merges."""
    links = platform.identity.links_of(MemberId(member_id))
    return {"member": member_id, "links": [link.to_dict() for link in links]}


class MergeChange(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    into: str | None = Field(default=None, max_length=64)
    reviewer: str = Field(min_length=1, max_length=200)


@router.post("/members/{member_id}/$merge")
def merge(
    member_id: str, body: MergeChange, platform: PlatformDep, operator: OperatorDep
) -> dict[str, Any]:
    """Mark ``member_id`` as a duplicate of ``into``: matching answers with ``into`` from now
    on, and the retired id keeps its links and lineage."""
    if body.into is None:
        raise InvalidInput(
            "$merge names the surviving member",
            issues=[Issue("into is required", "into", "required")],
        )
    link = merge_members(
        platform.identity,
        platform.transactions,
        platform.members,
        MemberId(member_id),
        MemberId(body.into),
        by=f"{operator.client_id}:{body.reviewer}",
        at=utcnow(),
        request_id=current_request_id(),
    )
    return link.to_dict()


@router.post("/members/{member_id}/$split")
def split(
    member_id: str, body: MergeChange, platform: PlatformDep, operator: OperatorDep
) -> dict[str, Any]:
    """Undo a merge from now on: ``member_id`` is its own member again."""
    into = split_members(
        platform.identity,
        platform.transactions,
        MemberId(member_id),
        by=f"{operator.client_id}:{body.reviewer}",
        at=utcnow(),
        request_id=current_request_id(),
    )
    return {"member": member_id, "split_from": into}


@router.get("/links")
def find_links(
    platform: PlatformDep,
    _operator: OperatorDep,
    identifier: Annotated[str, Query(min_length=1, max_length=700)],
) -> dict[str, Any]:
    """Which of our members an identifier (``system|value``, or a bare value) names."""
    system, _, value = identifier.rpartition("|")
    links = platform.identity.members_by_identifier(value, system if "|" in identifier else None)
    return {"identifier": identifier, "links": [link.to_dict() for link in links]}
