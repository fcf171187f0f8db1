"""Partners, for operators: the directory, each partner's last capability reading (the
guide versions it speaks, its operations) and what changed at that refresh, its
breaker, how it is run (suspended or not, maintenance windows, its rate) and its
exchanges of the last day. An operator reads the capabilities again, suspends or
resumes it, edits its maintenance windows and contacts: the same use cases as ``PUT
/partners/{id}/operations`` (audited with what was before and after) and ``$refresh``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import FormDep, IntervenerVisit, PartnersVisit, Visit
from payerbridge.console.health import read_health
from payerbridge.console.pages import NO_FLASH, Flash
from payerbridge.errors import InvalidInput, Issue, PayerBridgeError
from payerbridge.exchange.calls.breaker import as_seen
from payerbridge.exchange.model import BreakerState
from payerbridge.logging import current_request_id
from payerbridge.routing.endpoints import in_call_order
from payerbridge.routing.enrolment import (
    RefreshPartner,
    SetOperations,
    refresh_partner,
    registered,
    set_operations,
)
from payerbridge.types import PartnerId

__all__ = ["router"]

router = APIRouter()

_NOTICES = {
    "refreshed": "the partner's capabilities were read again",
    "suspended": "the partner is suspended: new exchanges find no route to it",
    "resumed": "the partner takes exchanges again",
    "operations": "the partner's maintenance windows and contacts were saved",
}


@router.get("/partners")
def partners_page(visit: PartnersVisit) -> Response:
    uow = visit.platform.units.partner_health()
    now = uow.clock()
    breakers = uow.breakers.all()
    recent = uow.oversight.partner_exchanges(now - timedelta(days=1))
    rows = [
        {
            "partner": partner,
            "breaker": as_seen(breakers.get(partner.fhir_base) or BreakerState(), now),
            "capabilities": uow.partners.capabilities(partner.id),
            "maintenance": partner.operations.in_maintenance(now),
            "recent": recent.get(partner.id, {}),
        }
        for partner in uow.partners.list()
    ]
    return visit.render("partners.html", {"rows": rows})


@router.get("/partners/{partner_id}")
def partner_page(partner_id: str, visit: PartnersVisit) -> Response:
    partner = registered(visit.platform.units.partners().partners, PartnerId(partner_id[:64]))
    notice = _NOTICES.get(visit.request.query_params.get("done", ""))
    return _partner_view(visit, partner.id, Flash(notice=notice))


def _partner_view(visit: Visit, partner_id: PartnerId, flash: Flash = NO_FLASH) -> Response:
    uow = visit.platform.units.partner_health()
    partner = registered(uow.partners, partner_id)
    now = uow.clock()
    last_refresh = uow.oversight.last_event("Partner", partner.id, "partner.capabilities")
    # Where its endpoints last moved: a re-read .well-known, or a directory import.
    moves = [
        uow.oversight.last_event("Partner", partner.id, action)
        for action in ("partner.endpoints", "partner.directory-import")
    ]
    moved = max((m for m in moves if m and m["detail"].get("changes")), key=_seq, default=None)
    context: dict[str, Any] = {
        "partner": partner,
        "breaker": as_seen(uow.breakers.get(partner.fhir_base), now),
        "endpoints": [
            (endpoint, as_seen(uow.breakers.get(endpoint.base), now))
            for endpoint in in_call_order(partner.endpoints)
        ],
        "endpoints_moved": moved,
        "capabilities": uow.partners.capabilities(partner.id),
        "last_refresh": last_refresh,
        "changes": (last_refresh or {}).get("detail", {}).get("changes", []),
        "operations": partner.operations.to_json(),
        "maintenance_json": orjson.dumps(
            partner.operations.to_json()["maintenance"], option=orjson.OPT_INDENT_2
        ).decode(),
        "contact_rows": _CONTACT_ROWS,
        "maintenance": partner.operations.in_maintenance(now),
        "recent": uow.oversight.partner_exchanges(now - timedelta(days=1)).get(partner.id, {}),
        "health": read_health(uow, now, [partner])[partner.id],
        "notice": flash.notice,
        "error": flash.error,
    }
    return visit.render("partner.html", context, status_code=flash.status_code)


def _seq(event: dict[str, Any]) -> int:
    return int(event["seq"])


def _act(visit: Visit, partner_id: str, action: Any) -> Response:
    partner = registered(visit.platform.units.partners().partners, PartnerId(partner_id[:64]))
    try:
        done = action(partner)
    except PayerBridgeError as exc:
        return _partner_view(visit, partner.id, Flash.refused(exc, _told(exc)))
    return RedirectResponse(f"/console/partners/{partner.id}?done={done}", status_code=303)


def _told(exc: PayerBridgeError) -> str:
    """The error with each problem it names (a field of a form, and what is wrong)."""
    named = [f"{i.expression}: {i.text}" if i.expression else i.text for i in exc.issues]
    if not named or named == [exc.text]:
        return exc.text
    return f"{exc.text}: {'; '.join(named)}"


@router.post("/partners/{partner_id}/refresh")
def refresh(partner_id: str, visit: IntervenerVisit, _form: FormDep) -> Response:
    uow, found = visit.platform.units.partners(), visit.signed_in

    def run(partner: Any) -> str:
        refresh_partner(RefreshPartner(partner.id, found.actor, current_request_id()), uow)
        return "refreshed"

    return _act(visit, partner_id, run)


@router.post("/partners/{partner_id}/status")
def set_status(partner_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    def run(partner: Any) -> str:
        status, note = form.get("status"), form.get("note")
        note = note.strip()[:500] if isinstance(note, str) else ""
        if status not in ("suspended", "active"):
            text = "choose to suspend or to resume the partner"
            raise InvalidInput(text, issues=[Issue(text, "status", "value")])
        if status == "suspended" and not note:
            text = "say why the partner is suspended: exchanges that find no route show it"
            raise InvalidInput(text, issues=[Issue(text, "note", "required")])
        document = partner.operations.to_json() | {
            "status": status,
            "note": note if status == "suspended" else None,
        }
        _save_operations(visit, partner.id, document)
        return "suspended" if status == "suspended" else "resumed"

    return _act(visit, partner_id, run)


@router.post("/partners/{partner_id}/operations")
def set_windows_and_contacts(partner_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    """The maintenance windows (the API's JSON list of windows) and the contacts (rows of
    name, email, phone) an operator edited; the rest of the operations is kept."""

    def run(partner: Any) -> str:
        document = partner.operations.to_json() | {
            "maintenance": _maintenance_field(form.get("maintenance")),
            "contacts": _contact_rows(form),
        }
        _save_operations(visit, partner.id, document)
        return "operations"

    return _act(visit, partner_id, run)


def _maintenance_field(value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return []
    try:
        return orjson.loads(text[:20_000])
    except orjson.JSONDecodeError as exc:
        why = "maintenance windows are a JSON list, as the API takes them"
        raise InvalidInput(why, issues=[Issue(why, "maintenance", "invalid")]) from exc


def _contact_rows(form: Any) -> list[dict[str, str | None]]:
    """Each row with anything in it (a row left blank is no contact)."""
    rows = []
    for index in range(_CONTACT_ROWS):
        fields = {
            name: (form.get(f"contact_{name}_{index}") or "").strip()[:200] or None
            for name in ("name", "email", "phone")
        }
        if any(fields.values()):
            rows.append(fields)
    return rows


_CONTACT_ROWS = 10


def _save_operations(visit: Visit, partner_id: PartnerId, document: dict[str, Any]) -> None:
    """The partner's operations document as an operator edited it (audited, before and
    after, by ``set_operations``)."""
    asked = SetOperations(partner_id, document, visit.signed_in.actor, current_request_id())
    set_operations(asked, visit.platform.units.partners())
