"""The audit trail read and proven over HTTP: FHIR AuditEvent (IHE BALP) for auditors,
and the RFC 9162 proofs a partner may ask for, of the events its own requests caused."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from payerbridge.api.deps import AuditorDep, CallerDep, PlatformDep, fhir_accept
from payerbridge.api.responses import FhirResponse, JsonResponse
from payerbridge.api.units import AuditUnitDep
from payerbridge.audit.proving import prove_request
from payerbridge.audit.search import audit_query
from payerbridge.bootstrap import Platform, utcnow
from payerbridge.errors import InvalidInput, Issue, NotFound
from payerbridge.fhir.audit_event import AuditObserver, audit_event_resource
from payerbridge.timestamps import utc_iso

__all__ = ["router"]

router = APIRouter(tags=["audit"])
_PROOF_PARAMETERS = ("request", "since")


def _observer(platform: Platform) -> AuditObserver:
    settings = platform.settings
    return AuditObserver(settings.org_name, settings.org_npi, f"{settings.base_url}/fhir")


@router.get("/audit/proofs", response_class=JsonResponse)
def audit_proofs(request: Request, uow: AuditUnitDep, caller: CallerDep) -> dict[str, Any]:
    """Inclusion proofs, against the newest signed checkpoint, of the events the request
    ``request`` (its X-Request-ID) caused as the caller; with ``since``, a checkpoint the
    caller holds, the proof that the newest extends it. An auditor's are every caller's.
    Events the checkpoint does not cover yet are ``pending`` (signed within 75 s)."""
    given = _single(request, _PROOF_PARAMETERS)
    request_id = given.get("request")
    if request_id is None:
        text = "request: give the X-Request-ID of your request"
        raise InvalidInput(text, issues=[Issue(text, "request", "required")])
    since = given.get("since")
    if since is not None and (not since.isdigit() or not 1 <= int(since) < 2**63):
        text = "since: give the seq of a signed checkpoint you hold"
        raise InvalidInput(text, issues=[Issue(text, "since", "invalid")])
    viewer = None if caller.principal.is_auditor else caller.client_id
    proofs = prove_request(
        uow.reader,
        request_id[:128],
        viewer=viewer,
        since=int(since) if since is not None else None,
    )
    return proofs.to_json()


def _single(request: Request, known: tuple[str, ...]) -> dict[str, str]:
    """Each parameter once, none unknown or empty; else 400 naming them."""
    found: dict[str, str] = {}
    issues = []
    for name, value in request.query_params.multi_items():
        if name not in known:
            text = f"{name[:40]}: unknown parameter; known: {', '.join(known)}"
            issues.append(Issue(text, name[:40], "not-supported"))
        elif name in found or not value:
            issues.append(Issue(f"{name}: give it once, with a value", name, "invalid"))
        else:
            found[name] = value
    if issues:
        raise InvalidInput("bad parameters", issues=issues)
    return found


@router.get("/fhir/AuditEvent", response_class=FhirResponse, dependencies=[Depends(fhir_accept)])
def search_audit_events(
    request: Request, platform: PlatformDep, uow: AuditUnitDep, _: AuditorDep
) -> FhirResponse:
    """Auditors: the audit chain as a searchset of AuditEvent (IHE BALP), newest first,
    by patient, entity, agent, subtype and date; ``next`` continues the search."""
    params = list(request.query_params.multi_items())
    query = audit_query(params)
    events = uow.reader.search(query)
    base = f"{platform.settings.base_url}/fhir"
    us = _observer(platform)
    links = [{"relation": "self", "url": _url(base, params)}]
    if len(events) == query.count:
        following = [(n, v) for n, v in params if n != "_cursor"]
        cursor = ("_cursor", str(events[-1].seq))
        links.append({"relation": "next", "url": _url(base, [*following, cursor])})
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": utc_iso(utcnow()),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/{event.seq}",
                "resource": audit_event_resource(event, us),
                "search": {"mode": "match"},
            }
            for event in events
        ],
    }
    return FhirResponse(bundle)


def _url(base: str, params: list[tuple[str, str]]) -> str:
    return f"{base}/AuditEvent" + (f"?{urlencode(params)}" if params else "")


@router.get(
    "/fhir/AuditEvent/{seq}", response_class=FhirResponse, dependencies=[Depends(fhir_accept)]
)
def read_audit_event(
    seq: str, platform: PlatformDep, uow: AuditUnitDep, _: AuditorDep
) -> FhirResponse:
    """Auditors: one event, by its place in the chain."""
    event = uow.reader.event(int(seq)) if seq.isdigit() and len(seq) < 19 else None
    if event is None:
        raise NotFound(f"AuditEvent/{seq[:40]} does not exist")
    return FhirResponse(audit_event_resource(event, _observer(platform)))
