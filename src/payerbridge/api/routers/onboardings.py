"""Plan-year onboarding (new payer): ``POST /onboardings`` with a partner and its members,
then the run's report. The plan's own systems submit and see only their own runs."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from payerbridge.api.deps import PlatformDep, SubmitterDep, current_platform
from payerbridge.api.idempotency import checked_key
from payerbridge.api.schemas import OnboardingCreate, onboarding_requests
from payerbridge.api.units import OnboardingUnitDep
from payerbridge.delivery.model import onboarding_subject
from payerbridge.errors import InvalidInput, Issue
from payerbridge.logging import current_request_id
from payerbridge.onboarding.increments import parse_since
from payerbridge.onboarding.model import NewOnboarding, Onboarding, ReadOnboarding
from payerbridge.onboarding.service import (
    accept_onboarding,
    member_reason,
    onboarding_id_for,
    onboarding_of,
    result_counts,
)
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.timestamps import utc_iso
from payerbridge.types import OnboardingId, PartnerId
from payerbridge.workflows.onboarding import enqueue_onboarding

__all__ = ["onboarding_report", "router"]

router = APIRouter(prefix="/onboardings", tags=["onboardings"])


@router.post("", status_code=202)
def create_onboarding(
    body: OnboardingCreate,
    caller: SubmitterDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """202 + Location: the members are matched at the partner, exported and imported in
    the background; the same Idempotency-Key answers with the run it started."""
    if idempotency_key is None or not idempotency_key.strip():
        text = "POST /onboardings needs an Idempotency-Key header (resend it when retrying)"
        raise InvalidInput(text, issues=[Issue(text, "Idempotency-Key", "required")])
    uow = current_platform(request).units.onboarding()  # the app's, as every handler's
    requests = onboarding_requests(body.partner, body.members)
    since = parse_since(body.since)
    onboarding = accept_onboarding(
        NewOnboarding(
            onboarding_id_for(caller.client_id, checked_key(idempotency_key)),
            PartnerId(body.partner),
            requests,
            client_id=caller.client_id,
            request_id=current_request_id(),
            since=since,
        ),
        uow,
    )
    enqueue_onboarding(onboarding.id, onboarding.partner_id)  # again: a no-op when running
    response.headers["Location"] = str(
        request.url_for("get_onboarding", onboarding_id=onboarding.id)
    )
    return onboarding_report(uow, onboarding)


@router.get("/{onboarding_id}", name="get_onboarding")
def get_onboarding(
    onboarding_id: str, uow: OnboardingUnitDep, caller: SubmitterDep, platform: PlatformDep
) -> dict[str, Any]:
    """The run: where it is, and how many members matched, were refused, were imported;
    ``delivery``: where what it stored went on to (ADR 0053)."""
    onboarding = onboarding_of(ReadOnboarding(OnboardingId(onboarding_id), caller.owner), uow)
    destinations = platform.units.destinations()
    subject = onboarding_subject(onboarding.id)
    deliveries = destinations.deliveries.of_subject(subject) if destinations else []
    return {**onboarding_report(uow, onboarding), "delivery": [d.to_json() for d in deliveries]}


@router.get("/{onboarding_id}/members")
def onboarding_members(
    onboarding_id: str,
    uow: OnboardingUnitDep,
    caller: SubmitterDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(alias="_offset", ge=0)] = 0,
) -> dict[str, Any]:
    """Each member's result (match, nomatch, consentconstraint, withdrawn, notexported;
    null while waiting) with its reason (code and text), the resources imported for it
    and, of an incremental run, how many of them changed (``nothing-new`` when none), in
    the order submitted; once its records are kept, the one Patient at the plan they are
    under, how it was chosen and where its sources' Patients differ (ADR 0054)."""
    onboarding = onboarding_of(ReadOnboarding(OnboardingId(onboarding_id), caller.owner), uow)
    members = uow.onboardings.members(onboarding.id, first=offset, size=count)
    return {
        "total": onboarding.total,
        "offset": offset,
        "items": [
            {
                "member_id": m.member_id,
                "result": m.result,
                "reason": member_reason(m, onboarding.since),
                "imported": m.imported or 0,
                "changed": m.changed,
                "member_patient": m.member_patient.to_json() if m.member_patient else None,
            }
            for m in members
        ],
    }


def onboarding_report(uow: OnboardingUnit, onboarding: Onboarding) -> dict[str, Any]:
    members = uow.onboardings.members(onboarding.id)
    chunks = uow.onboardings.chunks(onboarding.id)
    results = result_counts(members)
    results["pending"] = sum(1 for m in members if m.result is None)
    return {
        "id": onboarding.id,
        "partner": onboarding.partner_id,
        "status": onboarding.status.value,
        "error": onboarding.error,
        "members": onboarding.total,
        "results": results,
        "imported_members": sum(1 for m in members if m.imported),
        "imported_resources": sum(m.imported or 0 for m in members),
        # How each imported member's one Patient at the plan was chosen (ADR 0054).
        "member_patients": dict(
            sorted(Counter(m.member_patient.how for m in members if m.member_patient).items())
        ),
        # Members whose sources differ on birth date or gender: maybe another person, for a
        # person to look at before the plan relies on the merge (ADR 0054).
        "identity_differences": sum(
            1
            for m in members
            if m.member_patient and any(d.get("identity") for d in m.member_patient.differences)
        ),
        "chunks": {
            "total": onboarding.chunks,
            "done": sum(1 for c in chunks if c.stage.value == "done"),
        },
        "since": utc_iso(onboarding.since) if onboarding.since else None,
        # What its data reflects: the since of a run that carries on from this one.
        "received_at": utc_iso(onboarding.received_at) if onboarding.received_at else None,
        "nothing_new": (
            sum(1 for m in members if m.imported and m.changed == 0) if onboarding.since else None
        ),
        "created_at": onboarding.created_at.isoformat(),
        "updated_at": onboarding.updated_at.isoformat(),
    }
