"""Partner health, for operators: each partner's state (up, degraded, down, in
maintenance) and why, its last success, error mix and p95 latency over the last hour, its
breaker and next probe, and its dead letters, every one replayed in one action (the same
use case as ``POST /partners/{id}/dead-letters/$replay``, audited with the operator as the
actor; a key made with the page, so the same form sent twice replays once)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from payerbridge.bootstrap import Platform
from payerbridge.console.auth import FormDep, IntervenerDep, PartnersDep, PlatformDep
from payerbridge.console.pages import render
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.bulk_replay import replay_partner_dead_letters
from payerbridge.logging import current_request_id
from payerbridge.oversight.call_samples import calls_since
from payerbridge.oversight.health_unit import PartnerHealthUnit
from payerbridge.oversight.partner_health import (
    HealthPolicy,
    HealthState,
    PartnerHealth,
    partners_health,
)
from payerbridge.routing.enrolment import registered
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId
from payerbridge.workflows.exchange import enqueue_exchange

__all__ = ["health_summary", "read_health", "router"]

router = APIRouter()


def read_health(
    uow: PartnerHealthUnit, now: datetime, partners: Sequence[Partner] | None = None
) -> dict[PartnerId, PartnerHealth]:
    """The health at ``now`` of ``partners`` (every registered partner's by default)."""
    policy = HealthPolicy()
    calls = calls_since(uow.calls, now - policy.window)
    chosen = uow.partners.list() if partners is None else partners
    return partners_health(chosen, uow.breakers.all(), calls, now, policy)


def health_summary(platform: Platform, now: datetime) -> dict[str, Any]:
    """The dashboard's card: partners by state, and those not up by name."""
    found = read_health(platform.units.partner_health(), now)
    counts = {state.value: 0 for state in HealthState}
    for health in found.values():
        counts[health.state.value] += 1
    troubled = sorted(
        (partner_id, health.state.value)
        for partner_id, health in found.items()
        if health.state is not HealthState.UP
    )
    return {"counts": counts, "troubled": troubled}


@router.get("/health")
def health_page(request: Request, platform: PlatformDep, found: PartnersDep) -> Response:
    uow = platform.units.partner_health()
    now = uow.clock()
    healths = read_health(uow, now)
    letters_before = now + timedelta(microseconds=1)
    rows = [
        {
            "partner": partner,
            "health": healths[partner.id],
            "dead_letters": len(
                uow.exchanges.ids_in_state(
                    ExchangeState.DEAD_LETTERED,
                    updated_before=letters_before,
                    partner_id=partner.id,
                )
            ),
        }
        for partner in uow.partners.list()
    ]
    context: dict[str, Any] = {
        "rows": rows,
        "now": now,
        "window_minutes": int(HealthPolicy().window.total_seconds() // 60),
        "replay_key": secrets.token_urlsafe(16),
        "notice": _notice(request),
    }
    return render(request, found, "health.html", context)


def _notice(request: Request) -> str | None:
    partner, count = request.query_params.get("partner"), request.query_params.get("count")
    if request.query_params.get("done") == "replayed" and partner and count and count.isdigit():
        return f"{int(count)} dead letter(s) of {partner[:64]} replayed: a worker resumes them"
    return None


@router.post("/partners/{partner_id}/dead-letters/replay")
def replay_dead_letters(
    partner_id: str, platform: PlatformDep, found: IntervenerDep, form: FormDep
) -> Response:
    partner = registered(platform.units.partners().partners, PartnerId(partner_id[:64]))
    key = form.get("replay_key")
    uow = platform.units.exchange()
    done = replay_partner_dead_letters(
        uow,
        partner.id,
        actor=found.actor,
        replay_key=key[:64] if isinstance(key, str) and key else None,
        request_id=current_request_id(),
    )
    for exchange_id in done.replayed:
        record = uow.exchanges.current(exchange_id)
        enqueue_exchange(record.id, record.partner_id, replay_count=record.replay_count)
    return RedirectResponse(
        f"/console/health?done=replayed&partner={partner.id}&count={len(done.replayed)}",
        status_code=303,
    )
