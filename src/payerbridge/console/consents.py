"""Consents: a member's, found by our member id or a consent's id, and their revocation
(an operator's: the same use case as ``POST /consents/{id}/$revoke``, which blocks the
exchanges still running under a member's opt-in in the same transaction)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from payerbridge.consent.model import ConsentRole, StoredConsent
from payerbridge.console.auth import FormDep, IntervenerVisit, ReaderVisit, Visit
from payerbridge.console.pages import NO_FLASH, Flash, Page
from payerbridge.errors import Conflict, Issue, NotFound, PayerBridgeError
from payerbridge.exchange.operations.interventions import revoke_and_stop
from payerbridge.logging import current_request_id
from payerbridge.types import MemberId

__all__ = ["router"]

router = APIRouter()

Identifier = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:-]*$")]
Offset = Annotated[int, Query(ge=0, le=100_000)]
_PAGE = 50


@router.get("/consents")
def consents_page(
    visit: ReaderVisit,
    member_id: Identifier = None,
    consent_id: Identifier = None,
    offset: Offset = 0,
) -> Response:
    return _consents_view(visit, member_id, consent_id, offset=offset)


def _consents_view(
    visit: Visit,
    member_id: str | None,
    consent_id: str | None,
    *,
    offset: int = 0,
    flash: Flash = NO_FLASH,
) -> Response:
    store, request = visit.platform.units.exchange().consents, visit.request
    consents: list[StoredConsent] = []
    if consent_id:
        one = store.get(consent_id)
        consents = [one] if one is not None else []
    elif member_id:
        consents = [
            consent
            for role in ConsentRole
            for consent in store.for_member(MemberId(member_id), role)
        ]
        consents.sort(key=lambda c: c.created_at, reverse=True)
    page = Page(offset, _PAGE, len(consents))
    context = {
        "member_id": member_id or "",
        "consent_id": consent_id or "",
        "searched": bool(member_id or consent_id),
        "consents": consents[offset : offset + _PAGE],
        "page": page,
        "links": page.links(dict(request.query_params)),
        "notice": flash.notice or _notice(request),
        "error": flash.error,
    }
    return visit.render("consents.html", context, status_code=flash.status_code)


def _notice(request: Request) -> str | None:
    blocked = request.query_params.get("blocked")
    if request.query_params.get("done") != "revoked":
        return None
    stopped = f"; {blocked} exchange(s) under it were stopped" if blocked not in (None, "0") else ""
    return f"the consent was revoked{stopped}"


@router.post("/consents/{consent_id}/revoke")
def revoke(consent_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    uow, found = visit.platform.units.exchange(), visit.signed_in
    consent_id = consent_id[:64]
    try:
        stored = uow.consents.get(consent_id)
        if stored is None:
            raise NotFound(f"no consent has the id '{consent_id}'")
        if stored.record.revoked_at is not None or form.get("shown_status") != "active":
            text = "the consent was revoked already (the page was older than that)"
            raise Conflict(text, issues=[Issue(text, "status", "conflict")])
        _, blocked = revoke_and_stop(
            uow, consent_id, by=found.actor, request_id=current_request_id()
        )
    except PayerBridgeError as exc:
        return _consents_view(visit, None, consent_id, flash=Flash.refused(exc))
    return RedirectResponse(
        f"/console/consents?consent_id={consent_id}&done=revoked&blocked={len(blocked)}",
        status_code=303,
    )
