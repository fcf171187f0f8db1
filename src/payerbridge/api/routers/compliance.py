"""The compliance report over HTTP, for operators and auditors: per obligation and duty
(ours apart from partners' answer times we observed), the rows met, missed, at risk,
pending and closed in a window, with the reasons and the subjects behind each
(``compliance.report``; the met ones up to ``_subjects``), the plan's identity and each
rule's citation and confirmation status, as JSON, or every row as CSV, streamed as it is
read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import StreamingResponse

from payerbridge.api.deps import Caller, PlatformDep, current_caller
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import ComplianceUnitDep
from payerbridge.bootstrap import utcnow
from payerbridge.compliance.report import (
    FORMATS,
    compliance_report,
    report_csv,
    report_json,
    report_window,
    subjects_limit,
)
from payerbridge.errors import InvalidInput, Issue
from payerbridge.policies import compliance_plan
from payerbridge.security.model import AUDITOR_SCOPE, OPERATOR_SCOPE

__all__ = ["router"]

router = APIRouter(tags=["compliance"])
_PARAMETERS = ("from", "to", "_format", "_subjects")


async def _reader(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """Operators run the platform; auditors check it."""
    caller.require(OPERATOR_SCOPE, AUDITOR_SCOPE)
    return caller


@router.get("/compliance/report", response_model=None)
def report(
    request: Request,
    platform: PlatformDep,
    uow: ComplianceUnitDep,
    _: Annotated[Caller, Depends(_reader)],
) -> Response | dict[str, Any]:
    """``from`` (inclusive) and ``to`` (exclusive), dates in the plan's calendar zone, at
    most 366 days apart; ``_format`` json (the default) or csv (every row, streamed);
    ``_subjects``: how many subjects each list of met rows shows in the JSON (default
    100, at most 10000; those missed, at risk and pending are all shown)."""
    given = _given(request)
    window = report_window(given.get("from"), given.get("to"), uow.obligations.calendar.zone)
    shape = given.get("_format", "json")
    if shape not in FORMATS:
        text = f"_format: one of {', '.join(FORMATS)} (got '{shape[:20]}')"
        raise InvalidInput(text, issues=[Issue(text, "_format", "not-supported")])
    subjects = subjects_limit(given.get("_subjects"))
    reader, obligations, now = uow.clock_reader, uow.obligations, utcnow()
    plan = compliance_plan(platform.settings)
    if shape == "csv":
        name = f"compliance-{plan.npi}-{window.first}-{window.last}.csv"
        return StreamingResponse(
            iterate_in_threadpool(report_csv(window, reader, obligations, now, plan=plan)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    found = compliance_report(window, reader, obligations, now, subjects=subjects, plan=plan)
    return JsonResponse(report_json(found))


def _given(request: Request) -> dict[str, str]:
    """Each parameter once, none unknown; else 400 naming them."""
    found: dict[str, str] = {}
    issues = []
    for name, value in request.query_params.multi_items():
        if name not in _PARAMETERS:
            text = f"{name[:40]}: unknown parameter; known: {', '.join(_PARAMETERS)}"
            issues.append(Issue(text, name[:40], "not-supported"))
        elif name in found:
            issues.append(Issue(f"{name}: give it once", name, "invalid"))
        else:
            found[name] = value
    if issues:
        raise InvalidInput(issues[0].text, issues=issues)
    return found
