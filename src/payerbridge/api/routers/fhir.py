"""FHIR R4 routes under /fhir: metadata, $member-match, $everything, read, Patient search."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from payerbridge import __version__
from payerbridge.api.deps import (
    Caller,
    CallerDep,
    PlatformDep,
    caller_of,
    current_platform,
    fhir_accept,
    read_json_body,
    run_store_bound,
)
from payerbridge.api.idempotency import Answer, answer_once, checked_key, request_digest
from payerbridge.api.responses import FhirResponse
from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform, new_id, utcnow
from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.everything import (
    EverythingPlan,
    EverythingQuery,
    Snapshot,
    everything_page,
    parse_everything_query,
    plan_everything,
    plan_search,
    released_on_page,
)
from payerbridge.disclosure.grants import (
    Granted,
    LeftOut,
    grants,
    limit_everything,
    limit_patient_search,
    on_page,
    require_everything,
)
from payerbridge.disclosure.reads import (
    DisclosureContext,
    authorize_member,
    find_patients,
    read_resource,
)
from payerbridge.disclosure.search import parse_patient_search, parse_search
from payerbridge.disclosure.window import ExchangeWindow
from payerbridge.errors import (
    Conflict,
    InvalidInput,
    Issue,
    NotFound,
    PayerBridgeError,
)
from payerbridge.fhir.bundles import searchset
from payerbridge.fhir.capability import capability_statement
from payerbridge.fhir.consent import parse_hrex_consent
from payerbridge.fhir.member_match import (
    build_member_match_response,
    parse_member_match_request,
)
from payerbridge.fhir.outcome import operation_outcome, outcome_for
from payerbridge.fhir.resources import ID_PATTERN, SUPPORTED_TYPES
from payerbridge.identity.decision import SINGLE_EXCHANGE
from payerbridge.identity.member_match import (
    MemberMatchAnswer,
    MemberMatchCommand,
    MemberMatchPorts,
    MemberMatchRules,
    answer_member_match,
)
from payerbridge.identity.service import AttemptLimit
from payerbridge.logging import current_request_id, log_on_request
from payerbridge.routing.profiles import PROFILES
from payerbridge.security.model import MEMBER_MATCH_SCOPE, granted_types, resource_scope
from payerbridge.types import MemberId

__all__ = ["member_match_route", "router"]

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix="/fhir", dependencies=[Depends(fhir_accept)], default_response_class=FhirResponse
)
_STARTED = datetime.now(UTC)


def fhir_base(platform: Platform) -> str:
    """Our FHIR base, from configuration only: a request's Host header is the caller's
    to choose, and the UMB system and every fullUrl are built on this."""
    return f"{platform.settings.base_url}/fhir"


@router.get("/metadata")
def metadata(platform: PlatformDep) -> FhirResponse:
    return FhirResponse(
        capability_statement(
            fhir_base=fhir_base(platform),
            token_url=f"{platform.settings.base_url}/auth/token",
            software_version=__version__,
            org_name=platform.settings.org_name,
            published=_STARTED,
            hrex_version=platform.settings.hrex_version,
            pdex_version=platform.settings.pdex_version,
            everything=platform.settings.offer_everything,
        )
    )


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


async def member_match(request: Request) -> Response:
    """``POST /fhir/Patient/$member-match`` (HRex).

    A plain Starlette route (``member_match_route`` below), not a FastAPI operation: the
    hottest call of the old-payer side (ADR 0006) spent a sixth of its CPU in FastAPI's
    dependency solving for one header and the router's content negotiation, which it now
    does itself. Errors still reach the app's handlers as OperationOutcomes.

    The platform and the caller are resolved in the request's one store-bound call
    (run_store_bound), not as sync dependencies: FastAPI gives each of those a thread hop
    of its own, which together cost more than the match. Authentication still answers
    first: an error in the body is kept here and raised after it."""
    await fhir_accept(request)
    idempotency_key = checked_key(request.headers.get("idempotency-key"))
    raw = await request.body()
    try:
        body: Any = await read_json_body(request)
    except PayerBridgeError as exc:
        body = exc
    return await run_store_bound(
        current_platform(request), _answer_member_match, request, raw, body, idempotency_key
    )


class _NamedRoute(Route):
    """A plain Starlette route that puts itself in the scope as ``route``, as FastAPI's own
    routes do: the request log and the rate limiter key on its path template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


# Put by ``create_app`` at the head of the application's route table, not on ``router``:
# matched there with one pattern, before any router is searched.
member_match_route = _NamedRoute(
    f"{router.prefix}/Patient/$member-match", member_match, methods=["POST"]
)


def _answer_member_match(
    request: Request, raw: bytes, body: Any, idempotency_key: str | None
) -> Response:
    platform = current_platform(request)
    caller = caller_of(request)
    caller.require(MEMBER_MATCH_SCOPE)
    if isinstance(body, PayerBridgeError):
        raise body
    command = _member_match_command(platform, caller, body, idempotency_key)
    ports = MemberMatchPorts(platform.identity, platform.consents, platform.members)
    return answer_once(
        platform,
        caller,
        idempotency_key,
        operation="member-match",
        request_hash=request_digest(raw),
        run=lambda unit: _rendered(platform, command, answer_member_match(command, unit, ports)),
    )


def _member_match_command(
    platform: Platform, caller: Caller, body: Any, idempotency_key: str | None
) -> MemberMatchCommand:
    """The request as the use case takes it; a bad Consent is a 422 naming every bad
    element, and nothing is stored."""
    settings = platform.settings
    match_input = parse_member_match_request(body, strict=settings.member_match_strict)
    requester = caller.as_requester()
    consent = None
    if match_input.consent is not None:
        consent = parse_hrex_consent(
            match_input.consent,
            our_npi=settings.org_npi,
            requester=requester,
            zone=ZoneInfo(settings.consent_time_zone),
        )
    rules = MemberMatchRules(
        policy=SINGLE_EXCHANGE,
        attempts=AttemptLimit(
            settings.member_match_max_cards,
            timedelta(seconds=settings.member_match_window_seconds),
        ),
        source_npi=settings.org_npi,
        umb_system=f"{fhir_base(platform)}/NamingSystem/umb",
    )
    return MemberMatchCommand(
        match_input, consent, requester, rules, current_request_id(), idempotency_key
    )


def _rendered(platform: Platform, command: MemberMatchCommand, answer: MemberMatchAnswer) -> Answer:
    """HRex Parameters naming the member matched, or the refusal's OperationOutcome."""
    if answer.throttled is not None:
        return Answer(retry_later=answer.throttled)
    if answer.refusal is not None:
        status, outcome = outcome_for(answer.refusal, current_request_id())
        return Answer(outcome, status)
    assert answer.matched is not None
    settings, match_input = platform.settings, command.request
    # The caller's HRex version where its request names one, else the one we declare.
    shape = match_input.shape or (
        PROFILES.hrex[settings.hrex_version] if settings.hrex_version else None
    )
    response = build_member_match_response(
        identifier_system=answer.matched.umb_system,
        identifier_value=answer.matched.umb_value,
        member_id=answer.matched.member_id if settings.member_match_return_member_id else None,
        shape=shape,
    )
    log_on_request(
        logger,
        "member-match answered",
        request_shape=match_input.shape.hrex if match_input.shape else None,
        answer_shape=shape.hrex if shape else "any",
    )
    return Answer(response, 200)


def _granted(caller: Caller) -> tuple[Granted, str]:
    """The types the caller's token lets it read (None: every type), and the context of
    the scopes it would ask for more with (``patient`` for a member-scoped token)."""
    context = "patient" if caller.principal.patient is not None else "system"
    return granted_types(caller.principal, "rs"), context


def _outcome(left_out: LeftOut | None) -> dict[str, Any] | None:
    """The outcome entry's OperationOutcome of a page that left types out, if it did."""
    if left_out is None:
        return None
    outcome = operation_outcome([left_out.issue()], severity="warning", code="suppressed")
    return {"id": new_id(), **outcome}


def _disclosure(platform: Platform, caller: Caller) -> DisclosureContext:
    return DisclosureContext(
        members=platform.members,
        consents=platform.consents,
        audit=platform.audit,
        requester=caller.as_requester(),
        source_npi=platform.settings.org_npi,
        at=utcnow(),
        request_id=current_request_id(),
        only_member=caller.principal.patient,
        segmentation=platform.segmentation,
    )


@router.get("/Patient/{patient_id}/$everything")
def everything(
    patient_id: str,
    platform: PlatformDep,
    caller: CallerDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The member's record in pages (``_type``, ``_since``, ``_count``): decided once at
    the first page, then paged by ``next`` links through that decision, the consent
    decided again for every page. It holds the types the caller's token grants, the
    Patient among them (disclosure.grants)."""
    granted, context = _granted(caller)
    require_everything(granted, context)
    if not platform.settings.offer_everything:
        text = (
            "this server does not offer $everything; read the member's record by searches "
            "(GET [type]?patient=[id]&_revinclude=Provenance:target)"
        )
        raise NotFound(text, issues=[Issue(text, "$everything", "not-supported")])
    _check_id(patient_id)
    member = MemberId(patient_id)
    params = list(request.query_params.multi_items())
    path = f"/Patient/{member}/$everything"
    if any(name == _PAGE_TOKEN for name, _ in params):
        return FhirResponse(_next_page(platform, caller, path, params))
    query = parse_everything_query(params, max_count=platform.settings.everything_page_size)
    query, left_out = limit_everything(query, granted, SUPPORTED_TYPES, context)
    idempotency_key = checked_key(idempotency_key)
    # Decided on every call, a retry under the same Idempotency-Key included: a consent
    # revoked since the first answer stops the data here.
    policy = authorize_member(_disclosure(platform, caller), member, "everything")

    def run() -> Answer:
        now = utcnow()
        plan = plan_everything(
            member,
            platform.members.stream_compartment(member),
            platform.members,
            policy,
            query,
            platform.segmentation,
            _window(platform, now),
        )
        bundle, event = _first_page(
            platform,
            caller,
            request,
            plan,
            policy,
            member,
            path,
            query,
            now,
            "everything",
            idempotency_key=idempotency_key,
            left_out=left_out,
        )
        return Answer(bundle, 200, [event])

    # What the token grants is part of the request: a retry under the same key by a
    # token granting other types is another request, not a replay of the first answer.
    grant = "*" if granted is None else ",".join(sorted(granted))
    return answer_once(
        platform,
        caller,
        idempotency_key,
        operation="everything",
        request_hash=request_digest(request.url.path, str(request.query_params), grant),
        run=lambda _unit: run(),
    )


_PAGE_TOKEN, _AFTER = "_page_token", "_after"


def _window(platform: Platform, now: datetime) -> ExchangeWindow:
    """The payer-to-payer window of an answer asked now (disclosure.window)."""
    return ExchangeWindow.at(now, years=platform.settings.payer_to_payer_years)


def _first_page(
    platform: Platform,
    caller: Caller,
    request: Request,
    plan: EverythingPlan | None,
    policy: ConsentPolicy,
    patient_id: MemberId,
    path: str,
    query: EverythingQuery,
    now: datetime,
    action: str,
    *,
    idempotency_key: str | None = None,
    left_out: LeftOut | None = None,
) -> tuple[dict[str, Any], AuditEvent]:
    """Keep the decision as a snapshot and answer its first page, which says what the
    caller's token left out (``left_out``); the plan is None when the member has no
    Patient."""
    if plan is None:
        raise NotFound(f"Patient/{patient_id} does not exist")
    snapshot = Snapshot(
        id=new_id(),
        client_id=caller.client_id,
        patient_id=patient_id,
        policy=policy,
        created_at=now,
        expires_at=now + timedelta(seconds=platform.settings.everything_snapshot_seconds),
        total=plan.total,
        query=query,
        withheld=plan.withheld,
        path=path,
    )
    with platform.transactions.begin() as unit:  # committed: its pages are read back
        platform.snapshots.save(unit, snapshot, plan.entries)
    self_url = f"{fhir_base(platform)}{path}"
    if request.url.query:
        self_url += f"?{request.url.query}"
    bundle, sent = _page(
        platform, caller, snapshot, after=0, self_url=self_url, now=now, left_out=left_out
    )
    first: dict[str, Any] = {
        "withheld": plan.withheld_count,
        "outside_window": plan.outside_window,
        "idempotency_key": idempotency_key,
    }
    if left_out is not None:
        first["types_not_granted"] = sorted(left_out.types)
    event = _page_event(caller, snapshot, now, action, entries=sent, after=0, first=first)
    return bundle, event


def _next_page(
    platform: Platform, caller: Caller, path: str, params: list[tuple[str, str]]
) -> dict[str, Any]:
    """A page after the first, as its ``next`` link names it: only on the path, and to
    the client, that asked for the first."""
    given = dict(params)
    if (
        sorted(name for name, _ in params) != sorted((_AFTER, _PAGE_TOKEN))
        or not given[_AFTER].isdigit()
    ):
        raise InvalidInput(
            "a next page is asked with its link as given: _page_token and _after only",
            issues=[Issue("follow the next link unchanged", _PAGE_TOKEN, "invalid")],
        )
    snapshot = platform.snapshots.get(given[_PAGE_TOKEN][:36])
    now = utcnow()
    if (
        snapshot is None
        or snapshot.client_id != caller.client_id
        or snapshot.path != path
        or snapshot.expires_at < now
    ):
        raise NotFound(
            "these pages do not exist or have expired; ask again from the first page",
            issues=[Issue("the page token is unknown or expired", _PAGE_TOKEN, "not-found")],
        )
    hop = "everything" if path.endswith("/$everything") else "search"
    policy = authorize_member(_disclosure(platform, caller), snapshot.patient_id, hop)
    if policy is not snapshot.policy:
        raise Conflict(
            "the member's consent changed since the first page; ask again from the first page",
            issues=[Issue("the consent policy changed", _PAGE_TOKEN, "conflict")],
        )
    after = int(given[_AFTER])
    self_url = _page_url(platform, snapshot, after)
    bundle, sent = _page(platform, caller, snapshot, after=after, self_url=self_url, now=now)
    platform.audit.record(_page_event(caller, snapshot, now, hop, entries=sent, after=after))
    return bundle


def _page(
    platform: Platform,
    caller: Caller,
    snapshot: Snapshot,
    *,
    after: int,
    self_url: str,
    now: datetime,
    left_out: LeftOut | None = None,
) -> tuple[dict[str, Any], int]:
    """One page of the snapshot, as released now to this caller: what its token (the one
    presented with this page) does not grant is left out too, and named."""
    count = snapshot.query.count
    rows = platform.snapshots.page(snapshot.id, after=after, count=count + 1)
    more, rows = len(rows) > count, rows[:count]
    granted, context = _granted(caller)
    allowed, denied = on_page(
        ((mode, resource) for _, mode, resource in rows),
        granted,
        everything=snapshot.path.endswith("/$everything"),
    )
    released = list(
        released_on_page(
            allowed,
            policy=snapshot.policy,
            withheld=snapshot.withheld,
            segmentation=platform.segmentation,
        )
    )
    with_provenance = snapshot.query.our_provenance and grants(granted, "Provenance")
    if snapshot.query.our_provenance and not with_provenance:
        denied |= {"Provenance"}
    if denied:  # a page asked with a token that grants less than the first page's did
        narrower = LeftOut(frozenset(denied), context)
        left_out = narrower if left_out is None else left_out | narrower
    next_url = _page_url(platform, snapshot, rows[-1][0]) if more else None
    bundle = everything_page(
        released,
        total=snapshot.total,
        fhir_base=fhir_base(platform),
        self_url=self_url,
        next_url=next_url,
        us=platform.us,
        provenance_id=new_id(),
        now=now,
        with_provenance=with_provenance,
        outcome=_outcome(left_out),
    )
    return bundle, len(released)


def _page_url(platform: Platform, snapshot: Snapshot, after: int) -> str:
    return f"{fhir_base(platform)}{snapshot.path}?{_PAGE_TOKEN}={snapshot.id}&{_AFTER}={after}"


def _page_event(
    caller: Caller,
    snapshot: Snapshot,
    now: datetime,
    action: str,
    *,
    entries: int,
    after: int,
    first: dict[str, Any] | None = None,
) -> AuditEvent:
    detail: dict[str, Any] = {
        "entries": entries,
        "policy": snapshot.policy.value,
        "pages": snapshot.id,
        "path": snapshot.path,
        "after": after,
        **(first or {}),  # what the first page decided, and its Idempotency-Key
    }
    return AuditEvent(
        at=now,
        actor=caller.client_id,
        action="patient.everything" if action == "everything" else "patient.search",
        entity_type="Patient",
        entity_id=snapshot.patient_id,
        outcome="success",
        request_id=current_request_id(),
        detail=detail,
    )


@router.get("/Patient")
def search_patients(platform: PlatformDep, caller: CallerDep, request: Request) -> FhirResponse:
    """Patients by identifier (the UMB from $member-match) or id, with our transmitter
    Provenance and, asked with ``_revinclude=Provenance:target``, their stored one; a
    member whose consent does not permit the caller is simply not found."""
    caller.require(resource_scope("Patient", "s"))
    granted, context = _granted(caller)
    query, with_provenance, left_out = limit_patient_search(
        parse_patient_search(request.query_params.multi_items()), granted, context
    )
    found = find_patients(_disclosure(platform, caller), query)
    now = utcnow()
    base = fhir_base(platform)
    self_url = f"{base}/Patient?{request.url.query}"
    bundle = everything_page(
        found,
        total=sum(1 for mode, _ in found if mode == "match"),
        fhir_base=base,
        self_url=self_url,
        next_url=None,
        us=platform.us,
        provenance_id=new_id(),
        now=now,
        with_provenance=with_provenance,
        outcome=_outcome(left_out),
    )
    return FhirResponse(bundle)


@router.get("/{resource_type}")
def search(
    resource_type: str, platform: PlatformDep, caller: CallerDep, request: Request
) -> FhirResponse:
    """A search within one member's records (``patient``; Coverage: ``beneficiary``),
    decided by that member's consent on the whole compartment and paged like
    ``$everything``; ``_revinclude=Provenance:target`` adds their stored Provenance."""
    _check_type(resource_type)
    caller.require(resource_scope(resource_type, "s"))
    params = list(request.query_params.multi_items())
    path = f"/{resource_type}"
    if any(name == _PAGE_TOKEN for name, _ in params):
        return FhirResponse(_next_page(platform, caller, path, params))
    query = parse_search(resource_type, params, max_count=platform.settings.everything_page_size)
    _check_id(query.patient_id)
    if caller.principal.patient is not None and query.patient_id != caller.principal.patient:
        # A member-scoped token sees nobody else: an empty search, not a refusal.
        return FhirResponse(searchset([], fhir_base=fhir_base(platform), at=utcnow()))
    policy = authorize_member(_disclosure(platform, caller), query.patient_id, "search")
    now = utcnow()
    granted, context = _granted(caller)
    plan = plan_search(
        query,
        platform.members.stream_compartment(query.patient_id),
        platform.members,
        policy,
        platform.segmentation,
        _window(platform, now),
        granted,
    )
    bundle, event = _first_page(
        platform,
        caller,
        request,
        plan,
        policy,
        query.patient_id,
        path,
        EverythingQuery(count=query.count, our_provenance=grants(granted, "Provenance")),
        now,
        "search",
        left_out=LeftOut(plan.left_out, context) if plan and plan.left_out else None,
    )
    platform.audit.record(event)
    return FhirResponse(bundle)


@router.get("/{resource_type}/{resource_id}")
def read(
    resource_type: str, resource_id: str, platform: PlatformDep, caller: CallerDep
) -> FhirResponse:
    """A resource, as ``disclosure.reads.read_resource`` releases it to this caller."""
    _check_type(resource_type)
    caller.require(resource_scope(resource_type, "r"))
    _check_id(resource_id)
    return FhirResponse(read_resource(_disclosure(platform, caller), resource_type, resource_id))


def _check_type(resource_type: str) -> None:
    if resource_type not in SUPPORTED_TYPES:
        raise NotFound(
            f"resource type '{resource_type[:64]}' is not supported by this server",
            issues=[
                Issue(
                    f"resource type '{resource_type[:64]}' is not supported", code="not-supported"
                )
            ],
        )


def _check_id(resource_id: str) -> None:
    if not ID_PATTERN.match(resource_id):
        raise InvalidInput(
            "not a valid FHIR id",
            issues=[Issue("resource ids are 1-64 letters, digits, '-' or '.'", "id")],
        )
