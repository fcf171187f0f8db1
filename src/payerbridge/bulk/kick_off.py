"""What a bulk kick-off checks before its job is recorded (PDex, Bulk Data; ADR 0018).

Every kick-off is the whole client's (never a member-scoped token's) and asynchronous
(``Prefer: respond-async``). ``$bulk-member-match`` needs its scopes and answers in the
PDex version asked for (2.2 unless told). An export is limited to the resource types the
token grants (SMART v1 or v2, per type or ``*``); a token that grants none is refused
before anything else is read. A Group export takes the client's own MatchedMembers
Group; a Patient or system export, the members whose consent names the client; both
payer-to-payer's ``exportType`` only. A provider's Group (``provider-<NPI>``) is Provider
Access's (``bulk.provider_export``); ``Group/received``, the plan's own organization's
(``bulk.received_group``).

The checks run in that order, an unreadable body told only once the caller may ask at
all, so each request meets the same first error whatever else is wrong with it. The job
is recorded here; the edge enqueues its workflow."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from payerbridge.bulk.access import require_whole_client
from payerbridge.bulk.export import (
    ExportAsked,
    GroupExportAsked,
    accept_group_export,
    accept_patient_export,
)
from payerbridge.bulk.member_match import MemberMatchAsked, accept_member_match
from payerbridge.bulk.model import PDEX_VERSIONS, BulkJob, JobKind
from payerbridge.bulk.provider_export import accept_provider_export
from payerbridge.bulk.received_group import RECEIVED_GROUP_ID, accept_received_export
from payerbridge.bulk.unit import BulkUnit
from payerbridge.consent.model import Requester
from payerbridge.errors import Forbidden, InvalidInput, Issue, NotFound, PayerBridgeError
from payerbridge.fhir.bulk_export import (
    ExportRequest,
    Notice,
    export_parameters,
    parse_export_request,
)
from payerbridge.fhir.codes import PAYER_TO_PAYER_EXPORT
from payerbridge.fhir.provider_member_match import is_provider_match_group
from payerbridge.fhir.resources import ID_PATTERN
from payerbridge.provider_access.groups import provider_of
from payerbridge.security.model import (
    BULK_MEMBER_MATCH_SCOPES,
    PROVIDER_MEMBER_MATCH_SCOPES,
    Principal,
    granted_types,
    require_scope,
)

__all__ = [
    "ExportKickOff",
    "KickedOff",
    "MemberMatchKickOff",
    "kick_off_export",
    "kick_off_member_match",
    "pdex_version_of",
]

_SPEC_VERSION = re.compile(r"^(2\.[12])(\.\d+)?(-[\w.]+)?$")
_DEFAULT_PDEX = "2.2"


@dataclass(frozen=True)
class MemberMatchKickOff:
    """A ``$bulk-member-match`` request: its body as read (or why it could not be) and
    its raw bytes, kept with the job."""

    principal: Principal
    respond_async: bool  # Prefer: respond-async
    pdex_versions: Collection[str]  # asked by X-PDex-Spec-Version or Prefer: pdex-spec=
    body: Any
    raw: bytes
    request_url: str
    request_id: str | None
    body_error: PayerBridgeError | None = None
    kind: JobKind = JobKind.MEMBER_MATCH  # or $provider-member-match's (ADR 0059)


@dataclass(frozen=True)
class ExportKickOff:
    """An export request: a Group's (``group_id``) or the client's members' (None), its
    parameters from the query and a POSTed Parameters body."""

    principal: Principal
    group_id: str | None
    exact_types: bool  # Bulk Data's rule: _type names every type that goes
    respond_async: bool
    lenient: bool  # Prefer: handling=lenient
    query: Sequence[tuple[str, str]]
    body: Any
    request_url: str
    request_id: str | None
    system_level: bool = False  # [base]/$export: no patient parameter
    body_error: PayerBridgeError | None = None


@dataclass(frozen=True)
class KickedOff:
    """The job recorded (its workflow yet to enqueue) and what the export leaves out of
    what was asked, to tell the client now as its error file will."""

    job: BulkJob
    notices: tuple[Notice, ...] = ()


def kick_off_member_match(command: MemberMatchKickOff, uow: BulkUnit) -> KickedOff:
    """Check the request (422 naming every bundle's issues; nothing kept) and record the
    job with its audit event."""
    principal = command.principal
    require_whole_client(principal)
    provider = command.kind is JobKind.PROVIDER_MEMBER_MATCH
    require_scope(
        principal, *(PROVIDER_MEMBER_MATCH_SCOPES if provider else BULK_MEMBER_MATCH_SCOPES)
    )
    _require_async(command.respond_async, f"${command.kind.value}")
    version = pdex_version_of(command.pdex_versions)
    if provider and version != "2.2":
        text = "$provider-member-match is PDex 2.2's; ask for 2.2 or leave the version out"
        raise InvalidInput(text, issues=[Issue(text, "X-PDex-Spec-Version", "not-supported")])
    if command.body_error is not None:
        raise command.body_error
    job = accept_member_match(
        MemberMatchAsked(
            command.body,
            command.raw,
            requester=_requester(principal),
            request_url=command.request_url,
            pdex_version=version,
            request_id=command.request_id,
            kind=command.kind,
        ),
        uow,
    )
    return KickedOff(job)


def kick_off_export(command: ExportKickOff, uow: BulkUnit) -> KickedOff:
    """Check the export asked for and record its job (see the module)."""
    export = _export_request(command)
    requester = _requester(command.principal)
    asked = ExportAsked(export, requester, command.request_url, command.request_id)
    group_id = command.group_id
    if group_id is None:
        _require_export_type(export, PAYER_TO_PAYER_EXPORT)
        return KickedOff(accept_patient_export(asked, uow), export.notices)
    if provider_of(group_id) is not None:
        job = accept_provider_export(GroupExportAsked(group_id, asked), uow)
        return KickedOff(job, export.notices)
    if group_id == RECEIVED_GROUP_ID:  # the plan's own members (ADR 0052)
        _require_export_type(export, PAYER_TO_PAYER_EXPORT)
        return KickedOff(
            accept_received_export(GroupExportAsked(group_id, asked), uow), export.notices
        )
    if not ID_PATTERN.match(group_id):
        raise NotFound(f"Group/{group_id[:64]} does not exist")
    stored = uow.jobs.group(group_id)
    if stored is not None and is_provider_match_group(stored.body):
        job = accept_provider_export(GroupExportAsked(group_id, asked), uow, matched=stored)
        return KickedOff(job, export.notices)
    _require_export_type(export, PAYER_TO_PAYER_EXPORT)
    job = accept_group_export(GroupExportAsked(group_id, asked), uow)
    return KickedOff(job, export.notices)


def _require_export_type(export: ExportRequest, *offered: str) -> None:
    """What this Group or export gives is one of ``offered`` exportTypes, not another's."""
    if export.export_type not in offered:
        text = (
            f"exportType '{export.export_type}' is not offered here; this export gives "
            f"{' or '.join(offered)}"
        )
        raise InvalidInput(text, issues=[Issue(text, "exportType", "not-supported")])


def pdex_version_of(asked: Collection[str]) -> str:
    """The PDex version to answer in: the one asked for (2.1 or 2.2, with any patch or
    pre-release), else 2.2; versions that differ, or one we do not answer in, are
    refused."""
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


def _export_request(command: ExportKickOff) -> ExportRequest:
    """The export asked for, limited to the types the token grants; a token that grants
    no type at all is refused before anything else."""
    require_whole_client(command.principal)
    granted = granted_types(command.principal)
    if granted is not None and not granted:
        text = (
            "the access token grants no resource type to export; request system/*.rs, or "
            "system/[type].rs for each type wanted (SMART v1: system/[type].read)"
        )
        raise Forbidden(text, issues=[Issue(text, "Authorization", "forbidden")])
    _require_async(command.respond_async, "an export")
    if command.body_error is not None:
        raise command.body_error
    pairs = list(command.query)
    if command.body is not None:
        pairs += export_parameters(command.body)
    export = parse_export_request(
        pairs,
        exact_types=command.exact_types,
        lenient=command.lenient,
        takes_patient=not command.system_level,
    )
    return export.limited_to(granted, "system/")


def _require_async(respond_async: bool, operation: str) -> None:
    if not respond_async:
        text = (
            f"{operation} runs asynchronously: send 'Prefer: respond-async' and poll "
            "the Content-Location of the answer"
        )
        raise InvalidInput(text, issues=[Issue(text, "Prefer", "required")])


def _requester(principal: Principal) -> Requester:
    return Requester(client_id=principal.client_id, npi=principal.npi)
