"""The audit chain, for auditors: how far it is signed (its head, the last signed
checkpoint, the events not yet signed), the last verification and a new one on demand
(recorded as an audit event itself, so the page shows who last verified and what was
found), and an entity's trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import RedirectResponse, Response

from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform, verify_audit_chain
from payerbridge.console.auth import AuditorVisit, FormDep, Visit
from payerbridge.console.pages import Flash, Page
from payerbridge.errors import PayerBridgeError
from payerbridge.logging import current_request_id
from payerbridge.security.operator_accounts import SignedIn

__all__ = ["router"]

router = APIRouter()

_TRAIL = 100  # events of an entity a page shows
_CHAIN = ("AuditChain", "chain")
EntityPart = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9._:/@-]*$")]


@dataclass(frozen=True)
class Trail:
    """The entity whose trail the page shows (none: no trail), from which event on."""

    entity_type: str | None = None
    entity_id: str | None = None
    offset: int = 0


@router.get("/audit")
def audit_page(
    visit: AuditorVisit,
    entity_type: EntityPart = None,
    entity_id: EntityPart = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    notice = None
    if visit.request.query_params.get("done") == "verified":
        notice = "the chain was verified: see the result below"
    return _audit_view(visit, Trail(entity_type, entity_id, offset), Flash(notice=notice))


def _audit_view(visit: Visit, shown: Trail, flash: Flash) -> Response:
    units = visit.platform.units
    uow = units.audit()
    entity_type, entity_id, offset = shown.entity_type, shown.entity_id, shown.offset
    head_seq, head_hash = uow.chain.head()
    last = uow.chain.last_checkpoint()
    trail: list[dict[str, Any]] | None = None
    page = Page(offset, _TRAIL, 0)
    if entity_type and entity_id:
        events = uow.audit.for_entity(entity_type, entity_id)
        page = Page(offset, _TRAIL, len(events))
        trail = events[offset : offset + _TRAIL]
    context = {
        "head_seq": head_seq,
        "head_hash": head_hash,
        "checkpoint": last.checkpoint if last else None,
        "unsigned": head_seq - (last.checkpoint.seq if last else 0),
        "verified": units.oversight().oversight.last_event(*_CHAIN, "audit.verify"),
        "entity_type": entity_type or "",
        "entity_id": entity_id or "",
        "trail": trail,
        "page": page,
        "links": page.links(dict(visit.request.query_params)),
        "notice": flash.notice,
        "error": flash.error,
    }
    return visit.render("audit.html", context, status_code=flash.status_code)


@router.post("/audit/verify")
def verify(visit: AuditorVisit, _form: FormDep) -> Response:
    try:
        _record_verification(visit.platform, visit.signed_in)
    except PayerBridgeError as exc:  # no key or checkpoint file to verify against yet
        text = f"the chain cannot be verified now: {exc.text}"
        return _audit_view(visit, Trail(), Flash.refused(exc, text))
    return RedirectResponse("/console/audit?done=verified", status_code=303)


def _record_verification(platform: Platform, found: SignedIn) -> None:
    """Verify the stored chain against the signed checkpoints with the public key, and
    record what was found."""
    report = verify_audit_chain(platform)
    uow = platform.units.audit()
    uow.audit.record(
        AuditEvent(
            at=uow.clock(),
            actor=found.actor,
            action="audit.verify",
            entity_type=_CHAIN[0],
            entity_id=_CHAIN[1],
            outcome="holds" if report.holds else "broken",
            request_id=current_request_id(),
            detail={
                "events": report.events,
                "last_seq": report.last_seq,
                "checkpoints_checked": report.checkpoints_checked,
                "signed_up_to": report.signed_up_to,
                "witnessed": report.witnessed,
                "first_bad": report.first_bad.seq if report.first_bad else None,
                "first_bad_reason": report.first_bad.reason if report.first_bad else None,
                "problems": report.problems[:20],
            },
        )
    )
