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
from payerbridge.api.capability import OurServer, capability_statement
from payerbridge.api.deps import (
    Caller,
    CallerDep,
    PlatformDep,
    current_platform,
    fhir_accept,
    read_json_body,
    run_store_bound,
)
from payerbridge.api.idempotency import (
    Answer,
    KeyedCall,
    answer_once,
    checked_key,
    request_digest,
)
from payerbridge.api.refusals import caller_of_counted, refusal_window
from payerbridge.api.responses import FhirResponse
from payerbridge.api.units import DisclosureUnitDep
from payerbridge.bootstrap import Platform, utcnow
from payerbridge.consent.hrex import parse_hrex_consent
from payerbridge.disclosure.everything import everything_page
from payerbridge.disclosure.grants import require_everything
from payerbridge.disclosure.operations import (
    EverythingCommand,
    PatientSearchCommand,
    SearchCommand,
    ask_live_for_search,
    ask_live_sources,
    everything_query,
    find_patient_page,
    first_everything_page,
    first_search_page,
    open_everything,
)
from payerbridge.disclosure.paging import (
    NextPageCommand,
    Page,
    Reader,
    disclosure_context,
    is_next_page,
    next_page,
)
from payerbridge.disclosure.reads import read_resource
from payerbridge.disclosure.scope import scope_issue
from payerbridge.disclosure.search import parse_patient_search, parse_search
from payerbridge.disclosure.unit import DisclosureUnit
from payerbridge.errors import (
    InvalidInput,
    Issue,
    NotFound,
    PayerBridgeError,
)
from payerbridge.fhir.bundles import searchset
from payerbridge.fhir.completeness import completeness_outcome
from payerbridge.fhir.member_match import (
    build_member_match_response,
    parse_member_match_request,
)
from payerbridge.fhir.outcome import operation_outcome, outcome_for
from payerbridge.fhir.resources import ID_PATTERN, SUPPORTED_TYPES
from payerbridge.identity.matching.decision import SINGLE_EXCHANGE
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
from payerbridge.transactions import UnitOfWork
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
            OurServer(
                fhir_base=fhir_base(platform),
                token_url=f"{platform.settings.base_url}/auth/token",
                software_version=__version__,
                org_name=platform.settings.org_name,
                hrex_version=platform.settings.hrex_version,
                pdex_version=platform.settings.pdex_version,
                everything=platform.settings.offer_everything,
            ),
            published=_STARTED,
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
    caller = caller_of_counted(platform, request, "member-match")
    caller.require(MEMBER_MATCH_SCOPE)
    if isinstance(body, PayerBridgeError):
        raise body
    command = _member_match_command(platform, caller, body, idempotency_key)
    uow = platform.units.disclosure()
    ports = MemberMatchPorts(uow.index, uow.consents, uow.clocks, uow.refusals)
    call = KeyedCall(caller, idempotency_key, "member-match", request_digest(raw))
    return answer_once(
        uow,
        call,
        lambda unit: _rendered(platform, command, answer_member_match(command, unit, ports)),
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
        refusal_window=refusal_window(platform),
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


def _reader(caller: Caller) -> Reader:
    """The caller as the disclosure room sees it: the types its token lets it read, the
    member a member-scoped token is limited to."""
    return Reader(
        caller.as_requester(),
        granted_types(caller.principal, "rs"),
        only_member=caller.principal.patient,
        request_id=current_request_id(),
    )


def _self_url(platform: Platform, request: Request, path: str) -> str:
    self_url = f"{fhir_base(platform)}{path}"
    return f"{self_url}?{request.url.query}" if request.url.query else self_url


def _bundle(platform: Platform, uow: DisclosureUnit, page: Page) -> dict[str, Any]:
    """The page as a searchset Bundle, its outcome entry saying what was left out."""
    outcome = None
    if page.left_out is not None:
        issues = [page.left_out.issue()]
        outcome = {
            "id": page.outcome_id,
            **operation_outcome(issues, severity="warning", code="suppressed"),
        }
    if page.removed:  # what the data scope removed: said, never silently
        shaped = operation_outcome(
            [scope_issue(page.removed)], severity="information", code="informational"
        )
        if outcome is None:
            outcome = {"id": page.outcome_id, **shaped}
        else:
            outcome["issue"] = [*outcome["issue"], *shaped["issue"]]
    if page.gaps:  # what a live source could not give: never a silently short answer
        incomplete = completeness_outcome(page.gaps)
        if outcome is None:
            outcome = {"id": page.outcome_id, **incomplete}
        else:
            outcome["issue"] = [*outcome["issue"], *incomplete["issue"]]
    return everything_page(page, fhir_base=fhir_base(platform), us=uow.us, outcome=outcome)


def _next_page(platform: Platform, uow: DisclosureUnit, command: NextPageCommand) -> FhirResponse:
    with uow:  # the page's audit event
        page = next_page(command, uow)
    return FhirResponse(_bundle(platform, uow, page))


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
    reader = _reader(caller)
    require_everything(reader.granted, reader.context)
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
    uow = platform.units.disclosure()
    if is_next_page(params):
        return _next_page(platform, uow, NextPageCommand(reader, path, tuple(params)))
    query, left_out = everything_query(params, reader, uow.rules)
    command = EverythingCommand(
        reader,
        member,
        query,
        left_out,
        path,
        _self_url(platform, request, path),
        idempotency_key=checked_key(idempotency_key),
    )
    with uow:  # on every call, a replay's too
        asked = open_everything(command, uow)
    live = ask_live_sources(asked, uow)  # permitted: the live sources, outside any unit

    def run(_: UnitOfWork) -> Answer:  # in the transaction of uow that answer_once begins
        return Answer(_bundle(platform, uow, first_everything_page(asked, uow, live)))

    # What the token grants is part of the request: a retry under the same key by a
    # token granting other types is another request, not a replay of the first answer.
    grant = "*" if reader.granted is None else ",".join(sorted(reader.granted))
    digest = request_digest(request.url.path, str(request.query_params), grant)
    return answer_once(uow, KeyedCall(caller, command.idempotency_key, "everything", digest), run)


@router.get("/Patient")
def search_patients(
    platform: PlatformDep, caller: CallerDep, uow: DisclosureUnitDep, request: Request
) -> FhirResponse:
    """Patients by identifier (the UMB from $member-match) or id, as
    ``disclosure.operations.find_patient_page`` finds them."""
    caller.require(resource_scope("Patient", "s"))
    command = PatientSearchCommand(
        _reader(caller),
        parse_patient_search(request.query_params.multi_items()),
        self_url=f"{fhir_base(platform)}/Patient?{request.url.query}",
    )
    with uow:
        page = find_patient_page(command, uow)
    return FhirResponse(_bundle(platform, uow, page))


@router.get("/{resource_type}")
def search(
    resource_type: str,
    platform: PlatformDep,
    caller: CallerDep,
    uow: DisclosureUnitDep,
    request: Request,
) -> FhirResponse:
    """A search within one member's records (``patient``; Coverage: ``beneficiary``),
    decided by that member's consent on the whole compartment and paged like
    ``$everything``; ``_revinclude=Provenance:target`` adds their stored Provenance."""
    _check_type(resource_type)
    caller.require(resource_scope(resource_type, "s"))
    reader = _reader(caller)
    params = list(request.query_params.multi_items())
    path = f"/{resource_type}"
    if is_next_page(params):
        return _next_page(platform, uow, NextPageCommand(reader, path, tuple(params)))
    query = parse_search(resource_type, params, max_count=platform.settings.everything_page_size)
    _check_id(query.patient_id)
    command = SearchCommand(reader, query, path, _self_url(platform, request, path))
    live = ask_live_for_search(command, uow)
    with uow:  # the first page's audit event
        page = first_search_page(command, uow, live)
        at = uow.now
    if page is None:  # a member-scoped token asking about another member
        return FhirResponse(searchset([], fhir_base=fhir_base(platform), at=at))
    return FhirResponse(_bundle(platform, uow, page))


@router.get("/{resource_type}/{resource_id}")
def read(
    resource_type: str,
    resource_id: str,
    platform: PlatformDep,
    caller: CallerDep,
    uow: DisclosureUnitDep,
) -> FhirResponse:
    """A resource, as ``disclosure.reads.read_resource`` releases it to this caller."""
    _check_type(resource_type)
    caller.require(resource_scope(resource_type, "r"))
    _check_id(resource_id)
    context = disclosure_context(_reader(caller), utcnow(), uow)
    return FhirResponse(read_resource(context, resource_type, resource_id))


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
