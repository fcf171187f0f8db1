"""Partner registration, for operators: which payers we exchange with, where their FHIR
API lives and how we get a token from them. Every change is audited with what changed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep, PlatformDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import PartnerHealthUnitDep, PartnersUnitDep
from payerbridge.clock import utcnow
from payerbridge.errors import InvalidInput, Issue
from payerbridge.exchange.calls.breaker import as_seen
from payerbridge.exchange.model import BreakerState
from payerbridge.exchange.operations.bulk_replay import replay_partner_dead_letters
from payerbridge.logging import current_request_id
from payerbridge.oversight.call_samples import calls_since
from payerbridge.oversight.partner_health import HealthPolicy, partners_health
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.endpoints import EndpointStatus, PartnerEndpoint
from payerbridge.routing.enrolment import (
    EnrolPartner,
    RefreshPartner,
    SetOperations,
    enrol_partner,
    refresh_partner,
    registered,
    set_operations,
)
from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, Partner, PartnerAuth
from payerbridge.timestamps import utc_iso
from payerbridge.types import PartnerId
from payerbridge.workflows.exchange import enqueue_exchange

__all__ = ["router"]

router = APIRouter(prefix="/partners", default_response_class=JsonResponse, tags=["partners"])

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid access token"},
    403: {"description": "The token lacks the operator scope"},
}


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    url: str = Field(max_length=500, description="A FHIR base at which the partner answers.")
    priority: int = Field(default=0, description="Lower is tried first; ties keep the order.")
    status: Literal["active", "off"] = "active"
    versions: list[Annotated[str, Field(max_length=20)]] = Field(default=[], max_length=10)
    note: str | None = Field(default=None, max_length=500)

    def endpoint(self) -> PartnerEndpoint:
        versions, status = tuple(self.versions), EndpointStatus(self.status)
        return PartnerEndpoint(self.url, self.priority, status, versions, note=self.note)


class PartnerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    npi: str
    base_url: str | None = Field(
        default=None,
        max_length=500,
        description="The partner's FHIR base URL; with endpoints, the first active one "
        "by priority (unset: taken from them).",
    )
    endpoints: list[EndpointIn] = Field(
        default=[],
        max_length=16,
        description="Where the partner answers, when more than base_url: exchanges call "
        "the first active one by priority and fail over down the list (ADR 0060).",
    )
    auth: Literal["smart", "udap"] | None = Field(
        default=None,
        description="How we get tokens from the partner: SMART Backend Services (our "
        "client id there and our key) or UDAP B2B (we register there with our community "
        "certificate). Unset: SMART when client_id is given, else none.",
    )
    client_id: str | None = Field(
        default=None,
        max_length=200,
        description="Our client id at the partner's authorization server; with SMART we "
        "sign our assertions with our own key (GET /auth/client-jwks); with UDAP, unset: "
        "we register dynamically.",
    )
    token_url: str | None = Field(
        default=None,
        max_length=500,
        description="The partner's token endpoint; unset: read from its "
        "/.well-known/smart-configuration (SMART) or signed UDAP metadata.",
    )
    scope: str = Field(default=DEFAULT_PARTNER_SCOPE, max_length=1000)


def partner_public(
    partner: Partner,
    breaker: BreakerState | None = None,
    capabilities: Capabilities | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The partner, what its CapabilityStatement said when last read and, where known,
    the circuit breaker of its FHIR endpoint as it stands ``now`` (an open breaker past
    its ``open_until`` waits for its probe: half-open, not open)."""
    state = as_seen(breaker or BreakerState(), now or utcnow())
    next_probe = state.next_probe_at
    return {
        "id": partner.id,
        "name": partner.name,
        "npi": partner.npi,
        "base_url": partner.base_url,
        "endpoints": [e.to_json() for e in partner.endpoints],
        "auth": partner.auth.value,
        "client_id": partner.client_id,
        "token_url": partner.token_url,
        "scope": partner.scope,
        "capabilities": capabilities.to_json() if capabilities else None,
        "operations": partner.operations.to_json(),
        "breaker": {
            "status": state.status.value,
            "consecutive_failures": state.consecutive_failures,
            "open_until": utc_iso(state.open_until) if state.open_until else None,
            "next_probe_at": utc_iso(next_probe) if next_probe else None,
        },
    }


@router.post("", status_code=201, responses={200: {"description": "Updated"}, **_AUTH_ERRORS})
def register_partner(
    body: PartnerCreate, uow: PartnersUnitDep, operator: OperatorDep, response: Response
) -> dict[str, Any]:
    if body.base_url is None and not body.endpoints:
        text = "give base_url, or endpoints with at least one active"
        raise InvalidInput(text, issues=[Issue(text, "base_url", "required")])
    partner = Partner(
        PartnerId(body.id),
        body.name,
        body.npi,
        body.base_url or "",
        client_id=body.client_id,
        token_url=body.token_url,
        scope=body.scope,
        auth=PartnerAuth(body.auth) if body.auth else PartnerAuth.NONE,
        endpoints=tuple(e.endpoint() for e in body.endpoints),
    )
    enrolled = enrol_partner(EnrolPartner(partner, operator.client_id, current_request_id()), uow)
    if not enrolled.created:
        response.status_code = 200
    response.headers["Location"] = f"/partners/{partner.id}"
    public = partner_public(enrolled.partner, capabilities=enrolled.capabilities)
    if enrolled.unread is not None:
        public["capabilities_unread"] = enrolled.unread  # kept; POST …/$refresh reads again
    return public


@router.get("", responses=_AUTH_ERRORS)
def list_partners(uow: PartnerHealthUnitDep, _operator: OperatorDep) -> list[dict[str, Any]]:
    breakers = uow.breakers.all()
    directory = uow.partners
    return [
        partner_public(p, breakers.get(p.fhir_base), directory.capabilities(p.id))
        for p in directory.list()
    ]


@router.get("/{partner_id}", responses={404: {"description": "No such partner"}, **_AUTH_ERRORS})
def get_partner(
    partner_id: str, uow: PartnerHealthUnitDep, _operator: OperatorDep
) -> dict[str, Any]:
    partner = registered(uow.partners, PartnerId(partner_id))
    return partner_public(
        partner, uow.breakers.get(partner.fhir_base), uow.partners.capabilities(partner.id)
    )


@router.post(
    "/{partner_id}/$refresh",
    responses={
        404: {"description": "No such partner"},
        422: {"description": "A discovery document could not be read"},
        **_AUTH_ERRORS,
    },
)
def refresh(partner_id: str, uow: PartnersUnitDep, operator: OperatorDep) -> dict[str, Any]:
    """Read the partner's CapabilityStatement (and SMART configuration or UDAP metadata)
    again; the reading is kept, and the answer says what changed since the last one. A
    partner whose endpoints came from its davinci-configuration has it read first: those
    endpoints are replaced by what it now says (``endpoint_changes``)."""
    command = RefreshPartner(PartnerId(partner_id), operator.client_id, current_request_id())
    refreshed = refresh_partner(command, uow)
    return {
        "capabilities": refreshed.capabilities.to_json(),
        "changes": refreshed.changes,
        "endpoint_changes": list(refreshed.endpoint_changes),
    }


@router.put(
    "/{partner_id}/operations",
    responses={
        404: {"description": "No such partner"},
        400: {"description": "The document is not valid (each problem named)"},
        **_AUTH_ERRORS,
    },
)
def put_operations(
    partner_id: str,
    body: dict[str, Any],
    uow: PartnersUnitDep,
    health: PartnerHealthUnitDep,
    operator: OperatorDep,
) -> dict[str, Any]:
    """How we run exchanges with the partner: ``status`` (``active``, or ``suspended``:
    new exchanges find no route, with ``note`` as the reason) and its ``maintenance``
    windows (``{"start", "end", "reason"}`` instants, or ``{"weekly": "sun", "start":
    "02:00", "end": "04:00", "zone": "America/New_York", "reason"}``), during which new
    exchanges wait, its ``rate_limit`` (``{"requests", "per_seconds"}``: every
    worker's calls count), and ``exchange_budget_seconds``: how long an exchange with it
    keeps trying from its submission before it is dead-lettered (null: the platform's
    default, the rule's clocks); replaces what was set before."""
    asked = SetOperations(PartnerId(partner_id), body, operator.client_id, current_request_id())
    partner = set_operations(asked, uow)
    return partner_public(
        partner, health.breakers.get(partner.fhir_base), uow.partners.capabilities(partner.id)
    )


@router.get(
    "/{partner_id}/health",
    responses={404: {"description": "No such partner"}, **_AUTH_ERRORS},
)
def get_health(
    partner_id: str, uow: PartnerHealthUnitDep, _operator: OperatorDep
) -> dict[str, Any]:
    """Operators only: the partner's health now (``up``, ``degraded``, ``down`` or
    ``maintenance``) and why, from its breaker as it stands, its maintenance windows and
    the calls made to it over the last hour (exchanges' calls and the breaker's probes):
    the last answered one, the error mix, the p95 latency of answered calls."""
    partner = registered(uow.partners, PartnerId(partner_id))
    now = utcnow()
    policy = HealthPolicy()
    calls = calls_since(uow.calls, now - policy.window)
    breakers = {partner.fhir_base: uow.breakers.get(partner.fhir_base)}
    health = partners_health([partner], breakers, calls, now, policy)[partner.id]
    return {"partner_id": partner.id, "at": utc_iso(now), **health.to_json()}


@router.post(
    "/{partner_id}/dead-letters/$replay",
    responses={404: {"description": "No such partner"}, **_AUTH_ERRORS},
)
def replay_dead_letters(
    partner_id: str,
    platform: PlatformDep,
    operator: OperatorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Operators only: replay every exchange with the partner that is dead-lettered now
    (after its outage), each as ``POST /exchanges/{id}/$replay`` would; audited on the
    partner (``partner.dead-letters-replayed``). The same Idempotency-Key sent again
    replays nothing it already replayed."""
    uow = platform.units.exchange()
    partner = registered(platform.units.partners().partners, PartnerId(partner_id))
    done = replay_partner_dead_letters(
        uow,
        partner.id,
        actor=operator.client_id,
        replay_key=idempotency_key.strip()[:120] if idempotency_key else None,
        request_id=current_request_id(),
    )
    for exchange_id in done.replayed:
        record = uow.exchanges.current(exchange_id)
        enqueue_exchange(record.id, record.partner_id, replay_count=record.replay_count)
    return done.to_json()
