"""Dead letters and waiting exchanges, and what an operator does to them: replay,
resubmit (ask the old payer's reviewer again now), cancel. The same use cases as the
API's ``$replay``, ``$resubmit`` and ``$cancel``, audited with the operator as the actor.

Each form carries the state its page showed: an exchange that has moved since is not
acted on (a stale page never overrides what happened meanwhile), and a replay carries a
key made with the page, so that the same form sent twice replays once."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import FormDep, IntervenerVisit, ReaderVisit, Visit
from payerbridge.console.exchanges import exchange_view, stale
from payerbridge.console.pages import Flash
from payerbridge.errors import InvalidInput, Issue, PayerBridgeError
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.interventions import ask_again_now, cancel, replay
from payerbridge.exchange.operations.search import ExchangeCursor, ExchangeQuery, search_exchanges
from payerbridge.types import ExchangeId
from payerbridge.workflows.exchange import enqueue_exchange

__all__ = ["router"]

router = APIRouter()

S = ExchangeState
# The lists of the page: what waits on an operator, or may be asked again.
VIEWS: dict[str, tuple[str, frozenset[ExchangeState]]] = {
    "dead_lettered": ("Dead letters", frozenset({S.DEAD_LETTERED})),
    "manual_review": ("Waiting on a review", frozenset({S.MANUAL_REVIEW})),
    "blocked": ("Blocked", frozenset({S.BLOCKED})),
    "askable": ("Partial or in conflict", frozenset({S.PARTIAL, S.CONFLICT})),
}
_PAGE = 50


@router.get("/waiting")
def waiting_page(
    visit: ReaderVisit,
    view: Annotated[str, Query(max_length=20)] = "dead_lettered",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if view not in VIEWS:
        text = f"'{view[:20]}' is no list here; one of {', '.join(VIEWS)}"
        raise InvalidInput(text, issues=[Issue(text, "view", "value")])
    try:
        after = ExchangeCursor.decode(cursor) if cursor else None
    except ValueError as exc:
        text = "this page link is not one of ours: start from the first page"
        raise InvalidInput(text, issues=[Issue(text, "cursor", "value")]) from exc
    query = ExchangeQuery(states=VIEWS[view][1], count=_PAGE, after=after)
    page = search_exchanges(query, visit.platform.units.exchange().search, viewer=None)
    following = f"?view={view}&cursor={page.next.encode()}" if page.next else None
    context: dict[str, Any] = {
        "views": VIEWS,
        "view": view,
        "page": page,
        "following": following,
        "replay_key": secrets.token_urlsafe(16),
        "notice": _notice(visit.request),
    }
    return visit.render("waiting.html", context)


def _notice(request: Request) -> str | None:
    done, exchange = request.query_params.get("done"), request.query_params.get("exchange")
    if done == "replayed" and exchange:
        return f"exchange {exchange[:64]} was replayed"
    return None


def _field(form: FormData, name: str, limit: int = 200) -> str | None:
    value = form.get(name)
    return value.strip()[:limit] or None if isinstance(value, str) else None


def _act(visit: Visit, exchange_id: str, form: FormData, action: Any) -> Response:
    """Run ``action(record)`` unless the page was stale; the exchange's page with the
    error when it is refused, else back where the form came from."""
    uow = visit.platform.units.exchange()
    record = uow.exchanges.get(ExchangeId(exchange_id[:64]))
    try:
        problem = stale(record, _field(form, "shown_state", 40))
        if problem is not None:
            raise problem
        done = action(record)
    except PayerBridgeError as exc:
        record = uow.exchanges.get(record.id)
        return exchange_view(visit, record, Flash.refused(exc))
    if _field(form, "back") == "waiting":
        view = _field(form, "view", 20) or "dead_lettered"
        return RedirectResponse(
            f"/console/waiting?view={view}&done={done}&exchange={record.id}", status_code=303
        )
    return RedirectResponse(f"/console/exchanges/{record.id}?done={done}", status_code=303)


@router.post("/exchanges/{exchange_id}/replay")
def replay_exchange(exchange_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    platform, found = visit.platform, visit.signed_in

    def run(record: Any) -> str:
        key = _field(form, "replay_key")
        uow = platform.units.exchange()
        if replay(uow, record.id, actor=found.actor, replay_key=key):
            moved = uow.exchanges.get(record.id)
            enqueue_exchange(moved.id, moved.partner_id, replay_count=moved.replay_count)
        return "replayed"

    return _act(visit, exchange_id, form, run)


@router.post("/exchanges/{exchange_id}/cancel")
def cancel_exchange(exchange_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    platform, found = visit.platform, visit.signed_in

    def run(record: Any) -> str:
        note = _field(form, "note", 500)
        if note is None:
            text = "say why the exchange is cancelled: the note is kept with it"
            raise InvalidInput(text, issues=[Issue(text, "note", "required")])
        cancel(platform.units.exchange(), record.id, actor=found.actor, note=note)
        return "cancelled"

    return _act(visit, exchange_id, form, run)


@router.post("/exchanges/{exchange_id}/resubmit")
def resubmit_exchange(exchange_id: str, visit: IntervenerVisit, form: FormDep) -> Response:
    platform, found = visit.platform, visit.signed_in

    def run(record: Any) -> str:
        ask_again_now(platform.units.exchange(), record.id, actor=found.actor)
        return "resubmitted"

    return _act(visit, exchange_id, form, run)
