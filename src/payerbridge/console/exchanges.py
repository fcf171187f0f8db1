"""Exchanges: the search (member, partner, client, request id, state, reason, dates; the
API's search, ``exchange/operations/search_params.py``) and one exchange's page: where it stands,
the route it took, its dead letter, and its timeline from the audit trail. Opening an
exchange is audited: its page shows the member's identifier."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from payerbridge.audit.model import AuditEvent
from payerbridge.console.auth import ReaderVisit, Visit
from payerbridge.console.pages import NO_FLASH, Flash
from payerbridge.delivery.model import exchange_subject
from payerbridge.errors import Conflict, InvalidInput, Issue
from payerbridge.exchange.model import ASKABLE_AGAIN, DATA_ENDS, ExchangeRecord, ExchangeState
from payerbridge.exchange.operations.interventions import can_cancel
from payerbridge.exchange.operations.search import ExchangePage, search_exchanges
from payerbridge.exchange.operations.search_params import exchange_query
from payerbridge.exchange.operations.timeline import audit_of_exchange
from payerbridge.exchange.steps.review import awaits_partner_review
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.logging import current_request_id
from payerbridge.security.operator_accounts import SignedIn
from payerbridge.types import ExchangeId

__all__ = ["router", "search_params"]

router = APIRouter()

# The search form's fields, by the API parameter each becomes; the dates are days.
_FIELDS = ("member", "partner", "client", "request_id", "state", "reason")
_NOTICES = {
    "replayed": "the exchange was replayed: a worker resumes it after checking consent "
    "and identity again",
    "cancelled": "the exchange was cancelled",
    "resubmitted": "the old payer will be asked again now",
}


def search_params(query: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The search form's fields as the API's parameters: empty fields left out, the day
    fields ``from`` and ``to`` as a created-date range, ``count`` as ``_count``."""
    params: list[tuple[str, str]] = []
    for name, value in query:
        value = value.strip()
        if not value:
            continue
        if name == "from":
            params.append(("created", f"ge{value}"))
        elif name == "to":
            params.append(("created", f"le{value}"))
        elif name in ("count", "cursor"):
            params.append((f"_{name}", value))
        else:
            params.append((name, value))
    return params


@router.get("/exchanges")
def exchanges_page(visit: ReaderVisit) -> Response:
    request, uow = visit.request, visit.platform.units.exchange()
    form = {k: v.strip() for k, v in request.query_params.items()}
    context: dict[str, Any] = {"form": form, "states": [s.value for s in ExchangeState]}
    try:
        query = exchange_query(search_params(request.query_params.multi_items()))
    except InvalidInput as exc:
        context.update(error=exc.text, issues=exc.issues, page=None)
        return visit.render("exchanges.html", context, status_code=400)
    page: ExchangePage = search_exchanges(query, uow.search, viewer=None)
    following = None
    if page.next is not None:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        following = str(request.url.replace_query_params(**dict(kept), cursor=page.next.encode()))
    context.update(page=page, following=following, first=request.query_params.get("cursor"))
    return visit.render("exchanges.html", context)


@router.get("/exchanges/{exchange_id}")
def exchange_page(exchange_id: str, visit: ReaderVisit) -> Response:
    uow = visit.platform.units.exchange()
    record = uow.exchanges.get(ExchangeId(exchange_id[:64]))  # NotFound: the 404 page
    _audit_view(uow, visit.signed_in, record)
    notice = _NOTICES.get(visit.request.query_params.get("done", ""))
    return exchange_view(visit, record, Flash(notice=notice))


def exchange_view(visit: Visit, record: ExchangeRecord, flash: Flash = NO_FLASH) -> Response:
    """An exchange's page, with an action's outcome when it follows one: its timeline
    from the audit trail (``exchange.operations.timeline``), the route, the old payer's answer about
    the member, every partner call, where it ended."""
    uow = visit.platform.units.exchange()
    timeline = audit_of_exchange(
        record.id, viewer=None, exchanges=uow.exchanges, audit=uow.audit_reader
    )
    destinations = visit.platform.units.destinations()
    context = {
        "record": record,
        "deliveries": (
            destinations.deliveries.of_subject(exchange_subject(record.id)) if destinations else []
        ),
        "letter": uow.exchanges.dead_letter(record.id),
        "timeline": timeline,
        "route": timeline.route or _route(record),
        "completeness": _completeness(record),
        "can_replay": record.state in ASKABLE_AGAIN,
        "can_cancel": can_cancel(record, uow.clock()),
        "can_resubmit": awaits_partner_review(record),
        "notice": flash.notice,
        "error": flash.error,
    }
    return visit.render("exchange.html", context, status_code=flash.status_code)


def _route(record: ExchangeRecord) -> dict[str, Any] | None:
    """The last route decided (a replay decides again): chosen, rejected and why."""
    for transition in reversed(record.transitions):
        route = (transition.detail or {}).get("route")
        if route is not None:
            return dict(route)
    return None


def _completeness(record: ExchangeRecord) -> dict[str, Any] | None:
    if record.state not in DATA_ENDS:
        return None
    for transition in reversed(record.transitions):
        found = (transition.detail or {}).get("completeness")
        if transition.to_state == record.state.value and found is not None:
            return dict(found)
    return None


def _audit_view(uow: ExchangeUnit, found: SignedIn, record: ExchangeRecord) -> None:
    uow.audit.record(
        AuditEvent(
            at=uow.clock(),
            actor=found.actor,
            action="console.view",
            entity_type="Exchange",
            entity_id=record.id,
            outcome="success",
            request_id=current_request_id(),
            detail={"page": "exchange"},
        )
    )


def stale(record: ExchangeRecord, shown_state: str | None) -> Conflict | None:
    """The page's form was made for another state than the exchange is in now: acting
    on it would act on what the operator did not see."""
    if shown_state is None or shown_state == record.state.value:
        return None
    text = (
        f"the exchange moved from '{shown_state}' to '{record.state.value}' since this page "
        "was loaded: look at it again before acting"
    )
    return Conflict(text, issues=[Issue(text, "state", "conflict")])
