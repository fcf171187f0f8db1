"""FHIR R4 routes under /fhir: metadata, $member-match, $everything, read, Patient search."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from payerbridge import __version__
from payerbridge.api.deps import Caller, CallerDep, PlatformDep, fhir_accept, read_json_body
from payerbridge.api.idempotency import Answer, answer_once, request_digest
from payerbridge.api.responses import FhirResponse
from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform, new_id, utcnow
from payerbridge.disclosure.service import member_everything
from payerbridge.errors import InvalidInput, Issue, MatchError, NotFound
from payerbridge.fhir.capability import capability_statement
from payerbridge.fhir.member_match import (
    MemberMatchInput,
    build_member_match_response,
    parse_member_match_request,
)
from payerbridge.fhir.outcome import outcome_for
from payerbridge.fhir.resources import ID_PATTERN, SUPPORTED_TYPES
from payerbridge.identity.service import match_member
from payerbridge.logging import current_request_id
from payerbridge.timestamps import utc_iso

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix="/fhir", dependencies=[Depends(fhir_accept)], default_response_class=FhirResponse
)
_STARTED = datetime.now(UTC)


def fhir_base(platform: Platform, request: Request) -> str:
    configured = platform.settings.public_base_url
    base = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return f"{base}/fhir"


@router.get("/metadata")
def metadata(platform: PlatformDep, request: Request) -> FhirResponse:
    return FhirResponse(
        capability_statement(
            fhir_base=fhir_base(platform, request),
            software_version=__version__,
            org_name=platform.settings.org_name,
            published=_STARTED,
        )
    )


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


@router.post("/Patient/$member-match")
async def member_match(
    platform: PlatformDep,
    caller: CallerDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    raw = await request.body()
    body = await read_json_body(request)
    match_input = parse_member_match_request(body)
    umb_system = f"{fhir_base(platform, request)}/NamingSystem/umb"
    return await run_in_threadpool(
        answer_once,
        platform,
        caller,
        idempotency_key,
        operation="member-match",
        request_hash=request_digest(raw),
        run=lambda: _member_match(platform, caller, match_input, umb_system, idempotency_key),
    )


def _member_match(
    platform: Platform,
    caller: Caller,
    match_input: MemberMatchInput,
    umb_system: str,
    idempotency_key: str | None,
) -> Answer:
    def audit(member_id: str, outcome: str, detail: dict[str, Any]) -> AuditEvent:
        return AuditEvent(
            at=utcnow(),
            actor=caller.client_id,
            action="member-match",
            entity_type="Patient",
            entity_id=member_id,
            outcome=outcome,
            request_id=current_request_id(),
            detail={**detail, "idempotency_key": idempotency_key},
        )

    try:
        matched = match_member(
            match_input,
            platform.members,
            umb_system=umb_system,
            new_umb=lambda: new_id().replace("-", ""),
        )
    except MatchError as exc:  # an answer (422), kept and replayed like a match
        status, outcome = outcome_for(exc, current_request_id())
        return Answer(outcome, status, [audit("-", type(exc).__name__, {})])
    response = build_member_match_response(
        identifier_system=matched.umb_system,
        identifier_value=matched.umb_value,
        member_id=matched.member_id,
    )
    events = [audit(matched.member_id, "match", {"candidates": matched.candidates_considered})]
    return Answer(response, 200, events)


@router.get("/Patient/{patient_id}/$everything")
def everything(
    patient_id: str,
    platform: PlatformDep,
    caller: CallerDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    _check_id(patient_id)

    def run() -> Answer:
        now = utcnow()
        bundle = member_everything(
            patient_id,
            platform.members,
            us=platform.us,
            fhir_base=fhir_base(platform, request),
            provenance_id=new_id(),
            now=now,
        )
        event = AuditEvent(
            at=now,
            actor=caller.client_id,
            action="patient.everything",
            entity_type="Patient",
            entity_id=patient_id,
            outcome="success",
            request_id=current_request_id(),
            detail={"entries": len(bundle["entry"]), "idempotency_key": idempotency_key},
        )
        return Answer(bundle, 200, [event])

    return answer_once(
        platform,
        caller,
        idempotency_key,
        operation="everything",
        request_hash=request_digest(request.url.path, str(request.query_params)),
        run=run,
    )


@router.get("/Patient")
def search_patients(platform: PlatformDep, _caller: CallerDep, request: Request) -> FhirResponse:
    params = request.query_params
    identifier, resource_id = params.get("identifier"), params.get("_id")
    if identifier is None and resource_id is None:
        raise InvalidInput(
            "searching Patient needs identifier or _id",
            issues=[Issue("give identifier=[system|]value or _id", "identifier", "required")],
        )
    refs: list[str]
    if identifier is not None:
        system, _, value = (
            identifier.rpartition("|") if "|" in identifier else (None, "", identifier)
        )
        refs = platform.members.find_refs_by_token("Patient", "identifier", value, system or None)
    else:
        refs = [f"Patient/{resource_id}"]
    if resource_id is not None:
        refs = [r for r in refs if r == f"Patient/{resource_id}"]
    base = fhir_base(platform, request)
    found = platform.members.read_many(refs)
    return FhirResponse(_searchset(found, base))


def _searchset(resources: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": utc_iso(utcnow()),
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


@router.get("/{resource_type}/{resource_id}")
def read(
    resource_type: str, resource_id: str, platform: PlatformDep, _caller: CallerDep
) -> FhirResponse:
    if resource_type not in SUPPORTED_TYPES:
        raise NotFound(
            f"resource type '{resource_type[:64]}' is not supported by this server",
            issues=[
                Issue(
                    f"resource type '{resource_type[:64]}' is not supported", code="not-supported"
                )
            ],
        )
    _check_id(resource_id)
    resource = platform.members.read(resource_type, resource_id)
    if resource is None:
        raise NotFound(f"{resource_type}/{resource_id} does not exist")
    return FhirResponse(resource)


def _check_id(resource_id: str) -> None:
    if not ID_PATTERN.match(resource_id):
        raise InvalidInput(
            "not a valid FHIR id",
            issues=[Issue("resource ids are 1-64 letters, digits, '-' or '.'", "id")],
        )
