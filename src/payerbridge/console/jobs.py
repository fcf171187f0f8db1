"""Bulk jobs (``$bulk-member-match`` and the exports, as the old payer) and onboardings
(as the new payer), with their progress, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from payerbridge.bulk.model import JobStatus
from payerbridge.console.auth import ReaderVisit
from payerbridge.console.pages import Page
from payerbridge.onboarding.model import OnboardingStatus

__all__ = ["router"]

router = APIRouter()

_PAGE = 25
_MAX_OFFSET = 100_000
JobStatusName = Annotated[JobStatus | None, Query(description="Only jobs in this status.")]
OnboardingStatusName = Annotated[OnboardingStatus | None, Query(description="Only these.")]


@router.get("/jobs")
def jobs_page(
    visit: ReaderVisit,
    job_status: JobStatusName = None,
    onboarding_status: OnboardingStatusName = None,
    jobs_offset: Annotated[int, Query(ge=0, le=_MAX_OFFSET)] = 0,
    onboardings_offset: Annotated[int, Query(ge=0, le=_MAX_OFFSET)] = 0,
) -> Response:
    oversight = visit.platform.units.oversight().oversight
    job_total, jobs = oversight.bulk_jobs(
        status=job_status.value if job_status else None, offset=jobs_offset, count=_PAGE
    )
    run_total, runs = oversight.onboardings(
        status=onboarding_status.value if onboarding_status else None,
        offset=onboardings_offset,
        count=_PAGE,
    )
    query = dict(visit.request.query_params)
    job_page, run_page = (
        Page(jobs_offset, _PAGE, job_total),
        Page(onboardings_offset, _PAGE, run_total),
    )
    context = {
        "jobs": jobs,
        "runs": runs,
        "job_page": job_page,
        "run_page": run_page,
        "job_links": job_page.links(query, "jobs_offset"),
        "run_links": run_page.links(query, "onboardings_offset"),
        "job_statuses": list(JobStatus),
        "onboarding_statuses": list(OnboardingStatus),
        "job_status": job_status,
        "onboarding_status": onboarding_status,
    }
    return visit.render("jobs.html", context)
