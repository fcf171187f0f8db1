"""``/pull-schedules``: a client's standing pulls of its members' data at their old
payers: the first request once coverage has started and the member opted in, then
quarterly and run-off pulls (issue 54, ADR 0040). A client sees only its own; an
operator or auditor sees everyone's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from payerbridge.api.deps import AuditReaderDep, Caller, PlatformDep, SubmitterDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.schemas import PullScheduleCreate, PullScheduleUpdate
from payerbridge.bootstrap import Platform
from payerbridge.errors import NotFound
from payerbridge.exchange.intake.submission import ExchangeSubmission
from payerbridge.exchange.model import PullSchedule, PullStatus
from payerbridge.exchange.pulls.model import coverage_ends
from payerbridge.exchange.pulls.schedules import (
    cancel_pull,
    end_coverage,
    pull_schedules_public,
    schedule_first_pull,
    schedule_pull,
)
from payerbridge.types import ExchangeId

__all__ = ["router"]

router = APIRouter(
    prefix="/pull-schedules", default_response_class=JsonResponse, tags=["exchanges"]
)


def _owned(platform: Platform, schedule_id: str, caller: Caller) -> PullSchedule:
    schedule = platform.units.exchange().pulls.get(schedule_id)
    if not caller.sees_everyone and schedule.client_id != caller.client_id:
        raise NotFound(f"pull schedule {schedule_id[:64]} does not exist")
    return schedule


@router.post("", status_code=201)
def create_pull_schedule(
    body: PullScheduleCreate,
    platform: PlatformDep,
    caller: SubmitterDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """A standing pull: refused (422) when the member's opt-in forbids asking the old
    payer (an opt-in whose period has not begun is what a first request waits for)."""
    coverage_end = coverage_ends(body.coverage_end)
    actor = caller.client_id
    if body.request is not None:
        schedule = schedule_first_pull(
            platform.units.exchange(),
            ExchangeSubmission(
                body.request.to_domain(),
                body.request.model_dump(mode="json", exclude_none=True),
                client_id=caller.client_id,
                idempotency_key=None,
            ),
            actor=actor,
            coverage_end=coverage_end,
        )
    else:
        assert body.exchange is not None
        uow = platform.units.exchange()
        record = uow.exchanges.get(ExchangeId(body.exchange))
        if record.client_id != caller.client_id:
            raise NotFound(f"exchange {body.exchange[:64]} does not exist")
        schedule = schedule_pull(
            uow,
            record.id,
            actor=actor,
            coverage_end=coverage_end,
        )
    response.headers["Location"] = str(
        request.url_for("get_pull_schedule", schedule_id=schedule.id)
    )
    return pull_schedules_public([schedule])[0]


@router.get("")
def list_pull_schedules(
    platform: PlatformDep,
    caller: AuditReaderDep,
    status: Annotated[PullStatus | None, Query()] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The caller's schedules (an operator's or auditor's: everyone's), the oldest first,
    at most ``_count``."""
    found = platform.units.exchange().pulls.all(
        status=status,
        client_id=None if caller.sees_everyone else caller.client_id,
        limit=count,
    )
    return {"count": len(found), "items": pull_schedules_public(found)}


@router.get("/{schedule_id}", name="get_pull_schedule")
def get_pull_schedule(
    schedule_id: str, platform: PlatformDep, caller: AuditReaderDep
) -> dict[str, Any]:
    return pull_schedules_public([_owned(platform, schedule_id, caller)])[0]


@router.patch("/{schedule_id}")
def update_pull_schedule(
    schedule_id: str, body: PullScheduleUpdate, platform: PlatformDep, caller: SubmitterDep
) -> dict[str, Any]:
    """The day the member's coverage at the old payer ends, learned after scheduling: the
    periods after the one owed now follow it (409 for a stopped schedule)."""
    _owned(platform, schedule_id, caller)
    ended = coverage_ends(body.coverage_end)
    assert ended is not None  # required by the body
    updated = end_coverage(platform.units.exchange(), schedule_id, ended, actor=caller.client_id)
    return pull_schedules_public([updated])[0]


@router.post("/{schedule_id}/$cancel")
def cancel_pull_schedule(
    schedule_id: str, platform: PlatformDep, caller: SubmitterDep
) -> dict[str, Any]:
    """Stop the schedule (``cancelled``); the request it kept is cut."""
    _owned(platform, schedule_id, caller)
    stopped = cancel_pull(platform.units.exchange(), schedule_id, actor=caller.client_id)
    return pull_schedules_public([stopped])[0]
