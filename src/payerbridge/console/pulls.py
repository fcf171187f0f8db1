"""Standing pulls (ADR 0040): the schedules, the next due first, filtered by status and
kind, a page at a time, each marked overdue when the upkeep sweep has left it more than
a day past due; and their cancelling (an operator's: the same use case as
``POST /pull-schedules/{id}/$cancel``, audited as ``pull.stopped``).

No member data: a schedule's request is sealed and never read here, and its member key
(a hash of the member's id) is not shown either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from payerbridge.bootstrap import utcnow
from payerbridge.console.auth import FormDep, IntervenerVisit, ReaderVisit, Visit
from payerbridge.console.pages import NO_FLASH, Flash, Page
from payerbridge.errors import Conflict, InvalidInput, Issue, PayerBridgeError
from payerbridge.exchange.model import PullKind, PullSchedule, PullStatus
from payerbridge.exchange.pulls.schedules import cancel_pull

__all__ = ["router"]

router = APIRouter()

_PAGE = 50
Filter = Annotated[str, Query(max_length=20)]
Offset = Annotated[int, Query(ge=0, le=100_000)]
_E = TypeVar("_E", PullStatus, PullKind)


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule as the page shows it, with where it stands against its due time, as
    ``payerbridge_pull_schedules_overdue`` counts it (``PullSchedules.lateness_of``):
    ``overdue`` (the sweep has not acted on it), ``pulling`` (past due, but its last pull
    still runs or waits for a reviewer: the sweep rightly waits) or None."""

    schedule: PullSchedule
    lateness: str | None


def _chosen(enum: type[_E], name: str, value: str) -> _E | None:
    """A filter's value ('' or none: any), refused with what it may be."""
    if not value:
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        text = f"'{value[:20]}' is no {name} of a pull schedule; one of {allowed}"
        raise InvalidInput(text, issues=[Issue(text, name, "value")]) from None


@dataclass(frozen=True)
class PullFilter:
    """Which schedules the page lists: by status and kind as asked ('' for any), from
    which one on."""

    status: str = ""
    kind: str = ""
    offset: int = 0


@router.get("/pulls")
def pulls_page(
    visit: ReaderVisit, status: Filter = "", kind: Filter = "", offset: Offset = 0
) -> Response:
    return _pulls_view(visit, PullFilter(status, kind, offset))


def _pulls_view(visit: Visit, shown: PullFilter, flash: Flash = NO_FLASH) -> Response:
    platform, request = visit.platform, visit.request
    status, kind, offset = shown.status, shown.kind, shown.offset
    chosen_status = _chosen(PullStatus, "status", status)
    chosen_kind = _chosen(PullKind, "kind", kind)
    total, schedules = platform.units.exchange().pulls.page(
        status=chosen_status, kind=chosen_kind, offset=offset, count=_PAGE
    )
    late = platform.units.exchange().pulls.lateness_of([s.id for s in schedules], utcnow())
    rows = [ScheduleRow(s, late.get(s.id)) for s in schedules]
    page = Page(offset, _PAGE, total)
    context = {
        "rows": rows,
        "overdue": sum(row.lateness == "overdue" for row in rows),
        "page": page,
        "links": page.links({"status": status, "kind": kind}),
        "statuses": list(PullStatus),
        "kinds": list(PullKind),
        "status": chosen_status,
        "kind": chosen_kind,
        "notice": _notice(request),
        "error": flash.error,
    }
    return visit.render("pulls.html", context, status_code=flash.status_code)


def _notice(request: Request) -> str | None:
    schedule = request.query_params.get("schedule", "")[:64]
    if request.query_params.get("done") == "cancelled" and schedule:
        return f"pull schedule {schedule} was cancelled: it starts no more pulls"
    return None


@router.post("/pulls/{schedule_id}/cancel")
def cancel_schedule(schedule_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    """Stop an active schedule (``cancelled``): the form needs only the session's token."""
    platform, found = visit.platform, visit.signed_in
    schedule_id = schedule_id[:64]
    try:
        schedule = platform.units.exchange().pulls.get(schedule_id)
        if schedule.status is not PullStatus.ACTIVE:
            text = (
                f"pull schedule {schedule_id} stopped already ({schedule.stop_reason}): "
                "the page was older than that"
            )
            raise Conflict(text, issues=[Issue(text, "status", "conflict")])
        cancel_pull(platform.units.exchange(), schedule_id, actor=found.actor)
    except PayerBridgeError as exc:
        return _pulls_view(visit, PullFilter(), Flash.refused(exc))
    return RedirectResponse(
        f"/console/pulls?done=cancelled&schedule={schedule_id}", status_code=303
    )
