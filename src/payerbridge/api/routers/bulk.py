"""PDex bulk routes under /fhir: ``$bulk-member-match`` kick-off, the Bulk Data status and
file routes, and reading and searching the result Groups (ADR 0018).

Every route is the calling client's own: another client's job, file or Group does not
exist for it (404)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from email.utils import format_datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

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
from payerbridge.api.responses import FhirResponse, JsonResponse
from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform, utcnow
from payerbridge.bulk.export import accept_group_export, accept_patient_export
from payerbridge.bulk.jobs import job_file_lines
from payerbridge.bulk.member_match import accept_member_match, cancel_job, job_of
from payerbridge.bulk.model import PDEX_VERSIONS, BulkJob, JobStatus, OutputFile
from payerbridge.errors import (
    Forbidden,
    Gone,
    InvalidInput,
    Issue,
    NotAcceptable,
    NotFound,
    PayerBridgeError,
)
from payerbridge.fhir import codes
from payerbridge.fhir.bulk_export import ExportRequest, export_parameters, parse_export_request
from payerbridge.fhir.bulk_member_match import RESULT_SYSTEM, MatchResult
from payerbridge.fhir.bundles import searchset
from payerbridge.fhir.outcome import operation_outcome
from payerbridge.fhir.resources import ID_PATTERN
from payerbridge.logging import current_request_id
from payerbridge.security.model import BULK_MEMBER_MATCH_SCOPES, granted_types, resource_scope
from payerbridge.timestamps import utc_iso
from payerbridge.types import BulkJobId
from payerbridge.workflows.bulk import enqueue_job

__all__ = ["router"]

router = APIRouter(prefix="/fhir", default_response_class=FhirResponse)

NDJSON = "application/fhir+ndjson"
_NDJSON_ACCEPTABLE = {NDJSON, "application/ndjson", "application/*", "*/*"}
_SPEC_VERSION = re.compile(r"^(2\.[12])(\.\d+)?(-[\w.]+)?$")
_DEFAULT_PDEX = "2.2"
# How soon a client should poll a running job again (Bulk Data's Retry-After).
_RETRY_AFTER_SECONDS = 2


def _base(platform: Platform) -> str:
    return f"{platform.settings.base_url}/fhir"


def _preferences(request: Request) -> dict[str, str]:
    """The Prefer header's preferences (RFC 7240), by lower-cased name."""
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for item in header.split(","):
            name, _, value = item.split(";")[0].strip().partition("=")
            if name:
                found[name.strip().lower()] = value.strip().strip('"')
    return found


def _pdex_version(request: Request, preferences: dict[str, str]) -> str:
    """The PDex version the requester wants its answer in: ``X-PDex-Spec-Version`` or
    ``Prefer: pdex-spec=`` (as the PDex reference server reads them), else 2.2."""
    asked = {
        value
        for value in (request.headers.get("x-pdex-spec-version"), preferences.get("pdex-spec"))
        if value
    }
    versions = set()
    for value in asked:
        match = _SPEC_VERSION.match(value.strip())
        if match is None:
            text = (
                f"PDex version '{value[:20]}' is not one this server answers in; "
                f"ask for one of {', '.join(PDEX_VERSIONS)} (X-PDex-Spec-Version or "
                "Prefer: pdex-spec=), or leave it out for 2.2"
            )
            raise InvalidInput(text, issues=[Issue(text, "X-PDex-Spec-Version", "not-supported")])
        versions.add(match.group(1))
    if len(versions) > 1:
        text = "X-PDex-Spec-Version and Prefer: pdex-spec= ask for different PDex versions"
        raise InvalidInput(text, issues=[Issue(text, "X-PDex-Spec-Version", "conflict")])
    return versions.pop() if versions else _DEFAULT_PDEX


async def bulk_member_match(request: Request) -> Response:
    """``POST /fhir/Group/$bulk-member-match`` (PDex): accept the members and match them
    in a job. ``Prefer: respond-async`` is required; the request is checked here (422
    naming every bundle's issues, nothing kept); 202 and the status URL follow."""
    await fhir_accept(request)
    try:
        body: Any = await read_json_body(request)
    except PayerBridgeError as exc:
        body = exc
    raw = await request.body()
    return await run_store_bound(current_platform(request), _kick_off, request, raw, body)


# Routes of FastAPI's, so that the request log and the rate limits see their template
# (scope["route"]); out of the OpenAPI schema, as they read their own bodies.
_operation = partial(router.add_api_route, include_in_schema=False)
_operation("/Group/$bulk-member-match", bulk_member_match, methods=["POST"])


def _require_async(preferences: dict[str, str], operation: str) -> None:
    if "respond-async" not in preferences:
        text = (
            f"{operation} runs asynchronously: send 'Prefer: respond-async' and poll "
            "the Content-Location of the answer"
        )
        raise InvalidInput(text, issues=[Issue(text, "Prefer", "required")])


def _kick_off(request: Request, raw: bytes, body: Any) -> Response:
    platform = current_platform(request)
    caller = caller_of(request)
    _whole_client(caller)
    caller.require(*BULK_MEMBER_MATCH_SCOPES)
    preferences = _preferences(request)
    _require_async(preferences, "$bulk-member-match")
    version = _pdex_version(request, preferences)
    if isinstance(body, PayerBridgeError):
        raise body
    job = accept_member_match(
        platform.bulk,
        body,
        raw,
        requester=caller.as_requester(),
        request_url=str(request.url),
        pdex_version=version,
        request_id=current_request_id(),
    )
    return _accepted(platform, job)


def _accepted(platform: Platform, job: BulkJob, export: ExportRequest | None = None) -> Response:
    # A crash before this line leaves the job accepted; the upkeep sweep enqueues it.
    enqueue_job(job.id, job.client_id)
    outcome = operation_outcome(
        [Issue(f"accepted {job.total} member(s); poll the Content-Location for the result")],
        severity="information",
        code="informational",
        request_id=current_request_id(),
    )
    # What the export leaves out of what was asked is told here and in its error file.
    outcome["issue"] += [
        {
            "severity": "warning",
            "code": notice.code,
            "details": {"text": notice.text},
            "expression": [notice.parameter],
        }
        for notice in (export.notices if export is not None else ())
    ]
    return FhirResponse(
        outcome, status_code=202, headers={"Content-Location": _status_url(platform, job.id)}
    )


async def group_export(request: Request) -> Response:
    """``Group/{id}/$davinci-data-export`` (Da Vinci ATR, PDex): export the client's
    MatchedMembers Group; parameters from the query string and, POSTed, a Parameters body.
    PDex's rule: the member's Patient and our transmitter Provenance whatever ``_type``."""
    return await _export_route(request, partial(_kick_off_group_export, exact_types=False))


async def group_bulk_export(request: Request) -> Response:
    """``Group/{id}/$export`` (Bulk Data): the same Group and job as
    ``$davinci-data-export``, under Bulk Data's rule: ``_type`` names every type that goes
    (ADR 0018), as Bulk Data clients expect."""
    return await _export_route(request, partial(_kick_off_group_export, exact_types=True))


async def patient_export(request: Request) -> Response:
    """``Patient/$export`` (Bulk Data): export every member whose consent names the client,
    ``_type`` naming every type that goes."""
    return await _export_route(request, partial(_kick_off_patient_export, system_level=False))


async def system_export(request: Request) -> Response:
    """``[base]/$export`` (Bulk Data): everything this client may have, which on a
    payer-to-payer server is what ``Patient/$export`` gives: the members whose consent
    names it and the shared resources their records reach (ADR 0018). No ``patient``."""
    return await _export_route(request, partial(_kick_off_patient_export, system_level=True))


async def _export_route(request: Request, kick_off: Any) -> Response:
    await fhir_accept(request)
    body: Any = None
    if request.method == "POST" and await request.body():
        try:
            body = await read_json_body(request)
        except PayerBridgeError as exc:
            body = exc
    return await run_store_bound(current_platform(request), kick_off, request, body)


_operation("/Group/{group_id}/$davinci-data-export", group_export, methods=["GET", "POST"])
_operation("/Group/{group_id}/$export", group_bulk_export, methods=["GET", "POST"])
_operation("/Patient/$export", patient_export, methods=["GET", "POST"])
_operation("/$export", system_export, methods=["GET", "POST"])


def _export_request(
    request: Request, body: Any, caller: Caller, *, exact_types: bool, system_level: bool = False
) -> ExportRequest:
    """The export asked for, limited to the types the token grants (SMART v1 or v2, per
    type or ``*``); a token that grants no type at all is refused before anything else."""
    _whole_client(caller)
    granted = granted_types(caller.principal)
    if granted is not None and not granted:
        text = (
            "the access token grants no resource type to export; request system/*.rs, or "
            "system/[type].rs for each type wanted (SMART v1: system/[type].read)"
        )
        raise Forbidden(text, issues=[Issue(text, "Authorization", "forbidden")])
    preferences = _preferences(request)
    _require_async(preferences, "an export")
    if isinstance(body, PayerBridgeError):
        raise body
    pairs = list(request.query_params.multi_items())
    if body is not None:
        pairs += export_parameters(body)
    export = parse_export_request(
        pairs,
        exact_types=exact_types,
        lenient=preferences.get("handling") == "lenient",
        takes_patient=not system_level,
    )
    return export.limited_to(granted, "system/")


def _kick_off_group_export(request: Request, body: Any, *, exact_types: bool) -> Response:
    platform = current_platform(request)
    caller = caller_of(request)
    export = _export_request(request, body, caller, exact_types=exact_types)
    group_id = str(request.path_params["group_id"])
    if not ID_PATTERN.match(group_id):
        raise NotFound(f"Group/{group_id[:64]} does not exist")
    job = accept_group_export(
        platform.bulk,
        group_id,
        export,
        requester=caller.as_requester(),
        request_url=str(request.url),
        request_id=current_request_id(),
    )
    return _accepted(platform, job, export)


def _kick_off_patient_export(request: Request, body: Any, *, system_level: bool) -> Response:
    platform = current_platform(request)
    caller = caller_of(request)
    export = _export_request(request, body, caller, exact_types=True, system_level=system_level)
    job = accept_patient_export(
        platform.bulk,
        export,
        requester=caller.as_requester(),
        request_url=str(request.url),
        request_id=current_request_id(),
    )
    return _accepted(platform, job, export)


def _status_url(platform: Platform, job_id: BulkJobId) -> str:
    return f"{_base(platform)}/bulk-status/{job_id}"


def _file_url(platform: Platform, job_id: BulkJobId, name: str) -> str:
    return f"{_base(platform)}/bulk-files/{job_id}/{name}"


@router.get(
    "/bulk-status/{job_id}",
    responses={
        202: {"description": "Still running: X-Progress says how far, Retry-After when to ask"},
        410: {"description": "The job's output has expired"},
        500: {"description": "The job failed: the OperationOutcome says why"},
    },
)
def job_status(job_id: str, platform: PlatformDep, caller: CallerDep) -> Response:
    """Bulk Data status: 202 with ``X-Progress`` and ``Retry-After`` while the job runs,
    the manifest when it is done, an OperationOutcome if it failed, 410 once expired."""
    job = _own_job(platform, caller, job_id)
    if job.status is JobStatus.FAILED:
        text = f"the job failed: {job.error or 'see the server log'}"
        body = operation_outcome(
            [Issue(text)], severity="error", code="exception", request_id=current_request_id()
        )
        return FhirResponse(body, status_code=500)
    if job.status is not JobStatus.COMPLETED:
        return Response(
            status_code=202,
            headers={
                "X-Progress": f"{job.status.value}: {job.done} of {job.total} members",
                "Retry-After": str(_RETRY_AFTER_SECONDS),
            },
        )
    # Bulk Data: the completed status SHOULD say until when its files can be fetched.
    expires = {}
    if job.expires_at is not None:
        expires["Expires"] = format_datetime(job.expires_at.astimezone(UTC), usegmt=True)
    return JsonResponse(_manifest(platform, job), headers=expires)


def _manifest(platform: Platform, job: BulkJob) -> dict[str, Any]:
    return {
        "transactionTime": utc_iso(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [_listed(platform, job, f) for f in job.output if not f.error],
        "error": [_listed(platform, job, f) for f in job.output if f.error],
    }


def _listed(platform: Platform, job: BulkJob, file: OutputFile) -> dict[str, Any]:
    return {"type": file.type, "url": _file_url(platform, job.id, file.name), "count": file.count}


@router.delete("/bulk-status/{job_id}", status_code=202)
def cancel(job_id: str, platform: PlatformDep, caller: CallerDep) -> Response:
    """Cancel the job (or, once done, drop its output): 202; its status is 404 after."""
    _whole_client(caller)
    cancel_job(platform.bulk, _check_job_id(job_id), caller.client_id, current_request_id())
    outcome = operation_outcome(
        [Issue("the job is cancelled and its output deleted")],
        severity="information",
        code="informational",
        request_id=current_request_id(),
    )
    return FhirResponse(outcome, status_code=202)


@router.get(
    "/bulk-files/{job_id}/{name}",
    responses={
        406: {"description": "The Accept header does not admit application/fhir+ndjson"},
        410: {"description": "The job's output has expired"},
    },
)
def download(
    job_id: str,
    name: str,
    platform: PlatformDep,
    caller: CallerDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """One file of a completed job, as NDJSON, streamed line by line."""
    if accept:
        wanted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
        if not wanted & _NDJSON_ACCEPTABLE:
            raise NotAcceptable(f"bulk files are {NDJSON}; the Accept header asks for another")
    job = _own_job(platform, caller, job_id)
    file = job.file(name) if job.status is JobStatus.COMPLETED else None
    if file is None:
        raise NotFound(
            f"job '{job_id}' has no file '{name[:80]}'",
            issues=[Issue("take the file URLs from the job's manifest", "name", "not-found")],
        )
    platform.audit.record(
        AuditEvent(
            at=utcnow(),
            actor=caller.client_id,
            action="bulk-file.read",
            entity_type="BulkJob",
            entity_id=job.id,
            outcome="success",
            request_id=current_request_id(),
            detail={"file": file.name, "lines": file.count},
        )
    )
    lines: Iterator[bytes] = job_file_lines(platform.bulk, job, file)
    return StreamingResponse(iterate_in_threadpool(lines), media_type=NDJSON)


def _whole_client(caller: Caller) -> None:
    """Bulk work is the client's, never a member-scoped token's: a Group and an export
    hold many members."""
    if caller.principal.patient is not None:
        text = "a member-scoped token reads one member's records; bulk operations need the client's"
        raise Forbidden(text, issues=[Issue(text, "patient", "forbidden")])


def _own_job(platform: Platform, caller: Caller, job_id: str) -> BulkJob:
    _whole_client(caller)
    job = job_of(platform.bulk, _check_job_id(job_id), caller.client_id)
    if job.expired(utcnow()):
        raise Gone(
            f"the output of job '{job_id}' has expired",
            issues=[Issue("the job's files have expired; run it again", "job", "deleted")],
        )
    return job


def _check_job_id(job_id: str) -> BulkJobId:
    """The job id of a path, once it has the shape of one."""
    if not ID_PATTERN.match(job_id):
        raise NotFound(f"no bulk job '{job_id[:64]}'")
    return BulkJobId(job_id)


@router.get("/Group/{group_id}", dependencies=[Depends(fhir_accept)])
def read_group(group_id: str, platform: PlatformDep, caller: CallerDep) -> FhirResponse:
    """A result Group of the caller's own ``$bulk-member-match``."""
    _whole_client(caller)
    caller.require(resource_scope("Group", "r"))
    group = platform.bulk.jobs.group(group_id) if ID_PATTERN.match(group_id) else None
    if group is None or group.client_id != caller.client_id or group.expires_at <= utcnow():
        raise NotFound(f"Group/{group_id[:64]} does not exist")
    return FhirResponse(group.body)


_NPI_PARAMETERS = ("identifier", "characteristic-value-reference:identifier")
_RESULT_PARAMETERS = ("code", "characteristic")


@router.get("/Group", dependencies=[Depends(fhir_accept)])
def search_groups(platform: PlatformDep, caller: CallerDep, request: Request) -> FhirResponse:
    """The caller's result Groups by ``identifier`` or
    ``characteristic-value-reference:identifier`` (the requester's NPI), and ``code`` or
    ``characteristic`` (the match result). Values separated by commas are alternatives;
    a parameter given twice must hold both ways (PDex: multipleOr and multipleAnd)."""
    _whole_client(caller)
    caller.require(resource_scope("Group", "s"))
    npis: set[str] | None = None
    results: set[str] | None = None
    for name, value in request.query_params.multi_items():
        if name in _NPI_PARAMETERS:
            npis = _and(npis, {_token(v, codes.NPI_SYSTEM, name) for v in value.split(",")})
        elif name in _RESULT_PARAMETERS:
            asked = {_token(v, RESULT_SYSTEM, name) for v in value.split(",")}
            unknown = asked - {bucket.value for bucket in MatchResult}
            if unknown:
                text = f"'{sorted(unknown)[0][:40]}' is not a PdexMultiMemberMatchResultCS code"
                raise InvalidInput(text, issues=[Issue(text, name, "code-invalid")])
            results = _and(results, asked)
        else:
            supported = ", ".join((*_NPI_PARAMETERS, *_RESULT_PARAMETERS))
            text = f"Group search parameter '{name[:60]}' is not supported; use {supported}"
            raise InvalidInput(text, issues=[Issue(text, name[:60], "not-supported")])
    found = platform.bulk.jobs.find_groups(
        caller.client_id,
        requester_npis=None if npis is None else frozenset(npis),
        results=None if results is None else frozenset(results),
        now=utcnow(),
    )
    return FhirResponse(
        searchset(
            [group.body for group in found],
            fhir_base=_base(platform),
            at=utcnow(),
            self_url=str(request.url),
        )
    )


def _and(before: set[str] | None, alternatives: set[str]) -> set[str]:
    return alternatives if before is None else before & alternatives


def _token(value: str, system: str, parameter: str) -> str:
    """A token's code, when its system (if given) is ``system``."""
    given_system, bar, code = value.strip().rpartition("|")
    if (bar and given_system and given_system != system) or not code:
        text = f"{parameter} takes {system}|code or a bare code"
        raise InvalidInput(text, issues=[Issue(text, parameter, "invalid")])
    return code
