"""PDex bulk routes under /fhir: ``$bulk-member-match`` kick-off, the Bulk Data status and
file routes, and reading and searching the result Groups (ADR 0018).

Every route is the calling client's own: another client's job, file or Group does not
exist for it (404)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from email.utils import format_datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from payerbridge.api.deps import (
    CallerDep,
    PlatformDep,
    caller_of,
    current_platform,
    fhir_accept,
    read_json_body,
    run_store_bound,
)
from payerbridge.api.refusals import caller_of_counted
from payerbridge.api.responses import FhirResponse, JsonResponse
from payerbridge.api.units import BulkUnitDep, ProviderAccessUnitDep
from payerbridge.bootstrap import Platform, utcnow
from payerbridge.bulk import groups
from payerbridge.bulk.access import JobFileRead, OwnJob, cancel_own_job, own_job, read_job_file
from payerbridge.bulk.groups import GroupRead, GroupSearch
from payerbridge.bulk.jobs import job_file_lines
from payerbridge.bulk.kick_off import (
    ExportKickOff,
    KickedOff,
    MemberMatchKickOff,
    kick_off_export,
    kick_off_member_match,
)
from payerbridge.bulk.model import BulkJob, BulkReason, JobKind, JobStatus, OutputFile
from payerbridge.bulk.received_group import RECEIVED_GROUP_ID, read_received_group
from payerbridge.errors import Issue, NotAcceptable, PayerBridgeError
from payerbridge.fhir.bulk_member_match import MatchResult
from payerbridge.fhir.bundles import searchset
from payerbridge.fhir.outcome import operation_outcome
from payerbridge.logging import current_request_id
from payerbridge.provider_access.groups import provider_of
from payerbridge.provider_access.service import (
    ProviderGroupRead,
    attributed_provider_group,
    read_provider_group,
)
from payerbridge.timestamps import utc_iso
from payerbridge.types import BulkJobId
from payerbridge.workflows.bulk import enqueue_job

__all__ = ["router"]

router = APIRouter(prefix="/fhir", default_response_class=FhirResponse)

NDJSON = "application/fhir+ndjson"
_NDJSON_ACCEPTABLE = {NDJSON, "application/ndjson", "application/*", "*/*"}
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


async def provider_member_match(request: Request) -> Response:
    """``POST /fhir/Group/$provider-member-match`` (PDex 2.2, Provider Access): match the
    members a provider attests a treatment relationship with, in a job as
    ``$bulk-member-match`` is; its Groups are the provider profiles' (ADR 0059)."""
    await fhir_accept(request)
    try:
        body: Any = await read_json_body(request)
    except PayerBridgeError as exc:
        body = exc
    raw = await request.body()
    kick_off = partial(_kick_off, kind=JobKind.PROVIDER_MEMBER_MATCH)
    return await run_store_bound(current_platform(request), kick_off, request, raw, body)


# Routes of FastAPI's, so that the request log and the rate limits see their template
# (scope["route"]); out of the OpenAPI schema, as they read their own bodies.
_operation = partial(router.add_api_route, include_in_schema=False)
_operation("/Group/$bulk-member-match", bulk_member_match, methods=["POST"])
_operation("/Group/$provider-member-match", provider_member_match, methods=["POST"])


def _kick_off(
    request: Request, raw: bytes, body: Any, *, kind: JobKind = JobKind.MEMBER_MATCH
) -> Response:
    platform = current_platform(request)
    caller = caller_of_counted(platform, request, kind.value)
    preferences = _preferences(request)
    asked = (request.headers.get("x-pdex-spec-version"), preferences.get("pdex-spec"))
    kicked_off = kick_off_member_match(
        MemberMatchKickOff(
            principal=caller.principal,
            respond_async="respond-async" in preferences,
            pdex_versions=frozenset(value for value in asked if value),
            body=None if isinstance(body, PayerBridgeError) else body,
            raw=raw,
            request_url=str(request.url),
            request_id=current_request_id(),
            body_error=body if isinstance(body, PayerBridgeError) else None,
            kind=kind,
        ),
        platform.units.bulk(),
    )
    return _accepted(platform, kicked_off)


def _accepted(platform: Platform, kicked_off: KickedOff) -> Response:
    job = kicked_off.job
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
        for notice in kicked_off.notices
    ]
    return FhirResponse(
        outcome, status_code=202, headers={"Content-Location": _status_url(platform, job.id)}
    )


async def group_export(request: Request) -> Response:
    """``Group/{id}/$davinci-data-export`` (Da Vinci ATR, PDex): export the client's
    MatchedMembers Group; parameters from the query string and, POSTed, a Parameters body.
    PDex's rule: the member's Patient and our transmitter Provenance whatever ``_type``."""
    return await _export_route(request, partial(_kick_off_export, exact_types=False))


async def group_bulk_export(request: Request) -> Response:
    """``Group/{id}/$export`` (Bulk Data): the same Group and job as
    ``$davinci-data-export``, under Bulk Data's rule: ``_type`` names every type that goes
    (ADR 0018), as Bulk Data clients expect."""
    return await _export_route(request, partial(_kick_off_export, exact_types=True))


async def patient_export(request: Request) -> Response:
    """``Patient/$export`` (Bulk Data): export every member whose consent names the client,
    ``_type`` naming every type that goes."""
    return await _export_route(request, partial(_kick_off_export, exact_types=True))


async def system_export(request: Request) -> Response:
    """``[base]/$export`` (Bulk Data): everything this client may have, which on a
    payer-to-payer server is what ``Patient/$export`` gives: the members whose consent
    names it and the shared resources their records reach (ADR 0018). No ``patient``."""
    return await _export_route(
        request, partial(_kick_off_export, exact_types=True, system_level=True)
    )


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


def _kick_off_export(
    request: Request, body: Any, *, exact_types: bool, system_level: bool = False
) -> Response:
    platform = current_platform(request)
    caller = caller_of(request)
    preferences = _preferences(request)
    group_id = request.path_params.get("group_id")
    kicked_off = kick_off_export(
        ExportKickOff(
            principal=caller.principal,
            group_id=None if group_id is None else str(group_id),
            exact_types=exact_types,
            respond_async="respond-async" in preferences,
            lenient=preferences.get("handling") == "lenient",
            query=list(request.query_params.multi_items()),
            body=None if isinstance(body, PayerBridgeError) else body,
            request_url=str(request.url),
            request_id=current_request_id(),
            system_level=system_level,
            body_error=body if isinstance(body, PayerBridgeError) else None,
        ),
        platform.units.bulk(),
    )
    return _accepted(platform, kicked_off)


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
def job_status(job_id: str, platform: PlatformDep, uow: BulkUnitDep, caller: CallerDep) -> Response:
    """Bulk Data status: 202 with ``X-Progress`` and ``Retry-After`` while the job runs,
    the manifest when it is done, an OperationOutcome if it failed, 410 once expired."""
    job = own_job(OwnJob(caller.principal, job_id), uow)
    if job.status is JobStatus.FAILED:
        text = f"the job failed: {job.error or 'see the server log'}"
        body = operation_outcome(
            [Issue(text)],
            severity="error",
            code="exception",
            request_id=current_request_id(),
            reason=BulkReason.JOB_FAILED.value,
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
def cancel(job_id: str, uow: BulkUnitDep, caller: CallerDep) -> Response:
    """Cancel the job (or, once done, drop its output): 202; its status is 404 after."""
    cancel_own_job(OwnJob(caller.principal, job_id, current_request_id()), uow)
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
    uow: BulkUnitDep,
    caller: CallerDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """One file of a completed job, as NDJSON, streamed line by line."""
    if accept:
        wanted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
        if not wanted & _NDJSON_ACCEPTABLE:
            raise NotAcceptable(f"bulk files are {NDJSON}; the Accept header asks for another")
    job, file = read_job_file(
        JobFileRead(caller.principal, job_id, name, current_request_id()), uow
    )
    lines: Iterator[bytes] = job_file_lines(job, file, uow)
    return StreamingResponse(iterate_in_threadpool(lines), media_type=NDJSON)


@router.get("/Group/{group_id}", dependencies=[Depends(fhir_accept)])
def read_group(
    group_id: str, uow: BulkUnitDep, provider_access: ProviderAccessUnitDep, caller: CallerDep
) -> FhirResponse:
    """A result Group of the caller's own ``$bulk-member-match``, or, read by a provider
    organization, its own attribution Group (``provider-<NPI>``, Provider Access); read by
    the plan's own organization, ``received`` (the members it holds received records for)."""
    if group_id == RECEIVED_GROUP_ID:
        return FhirResponse(read_received_group(caller.principal, uow))
    if provider_of(group_id) is not None:
        asked = ProviderGroupRead(caller.principal, group_id)
        return FhirResponse(read_provider_group(asked, provider_access))
    return FhirResponse(groups.read_group(GroupRead(caller.principal, group_id), uow).body)


@router.get("/Group", dependencies=[Depends(fhir_accept)])
def search_groups(
    platform: PlatformDep,
    uow: BulkUnitDep,
    provider_access: ProviderAccessUnitDep,
    caller: CallerDep,
    request: Request,
) -> FhirResponse:
    """The caller's result Groups by ``identifier`` or
    ``characteristic-value-reference:identifier`` (the requester's NPI), and ``code`` or
    ``characteristic`` (the match result). Values separated by commas are alternatives;
    a parameter given twice must hold both ways (PDex: multipleOr and multipleAnd)."""
    search = GroupSearch(caller.principal, list(request.query_params.multi_items()))
    found = [group.body for group in groups.search_groups(search, uow)]
    # A provider finds its own attribution Group too (Provider Access, ADR 0059).
    if groups.group_filter(search).admits(caller.principal.npi, MatchResult.MATCHED.value):
        own = attributed_provider_group(caller.principal, provider_access)
        found += [own] if own is not None else []
    return FhirResponse(
        searchset(
            found,
            fhir_base=_base(platform),
            at=utcnow(),
            self_url=str(request.url),
        )
    )
