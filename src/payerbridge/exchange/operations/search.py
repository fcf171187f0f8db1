"""Finding exchanges (pure): the filters an operator or a client searches by, the stable
cursor a page continues from, and the use case that applies tenancy and pages.

Pages are keyset pages, newest first by ``(created_at, id)``: the cursor is the last
exchange shown, and the next page starts strictly after it, so paging stays fast at any
depth and an exchange submitted meanwhile neither repeats nor shifts a row.

Members are found by our member id (the new card's ``member_id``, else its
``subscriber_id``), never by name or birth date: the id is hashed with the client that
asked (``member_key_of()``, the key the received data is held under), so the search is
indexed without storing the id beside the exchange. An operator who names a member and
no client searches every client's key for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payerbridge.errors import Forbidden
from payerbridge.exchange.model import (
    DateRange,
    ExchangeCursor,
    ExchangeFilter,
    ExchangeRecord,
    ExchangeState,
)
from payerbridge.exchange.ports import ExchangeSearch
from payerbridge.exchange.received.reconcile import member_key_of
from payerbridge.types import ClientId, PartnerId

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "DateRange",
    "ExchangeCursor",
    "ExchangeFilter",
    "ExchangePage",
    "ExchangeQuery",
    "ExchangeSearch",
    "search_exchanges",
]

DEFAULT_COUNT, MAX_COUNT = 50, 500


@dataclass(frozen=True)
class ExchangeQuery:
    """What the caller asked for. ``member_id`` is our member id (hashed before it is
    searched); ``states`` and ``reason_codes`` match any of theirs; ``reason_codes`` are
    the code the exchange stopped or waits with (its ``error.code``)."""

    client_id: ClientId | None = None
    member_id: str | None = None
    member_key: str | None = None
    partner_id: PartnerId | None = None
    request_id: str | None = None
    states: frozenset[ExchangeState] = frozenset()
    reason_codes: frozenset[str] = frozenset()
    created: DateRange = field(default_factory=DateRange)
    updated: DateRange = field(default_factory=DateRange)
    count: int = DEFAULT_COUNT
    after: ExchangeCursor | None = None


@dataclass(frozen=True)
class ExchangePage:
    """One page, newest first, without histories; ``total`` matches the whole filter;
    ``next`` continues after the last item (None: this is the last page)."""

    items: tuple[ExchangeRecord, ...]
    total: int
    next: ExchangeCursor | None


def search_exchanges(
    query: ExchangeQuery, search: ExchangeSearch, *, viewer: ClientId | None
) -> ExchangePage:
    """One page of the exchanges ``query`` names that ``viewer`` may see: a client only
    its own (naming another client is Forbidden); None, an operator: everyone's."""
    if viewer is not None and query.client_id not in (None, viewer):
        raise Forbidden("a client searches only its own exchanges: leave out 'client'")
    client = viewer if viewer is not None else query.client_id
    where = ExchangeFilter(
        client_id=client,
        member_keys=_member_keys(query, client, search),
        partner_id=query.partner_id,
        request_id=query.request_id,
        states=query.states,
        reason_codes=query.reason_codes,
        created=query.created,
        updated=query.updated,
    )
    found = search.find(where, limit=query.count + 1, after=query.after)
    items = tuple(found[: query.count])
    last = items[-1] if len(found) > query.count else None
    following = ExchangeCursor.after(last) if last else None
    return ExchangePage(items, search.count(where), following)


def _member_keys(
    query: ExchangeQuery, client: ClientId | None, search: ExchangeSearch
) -> frozenset[str] | None:
    keys: set[str] | None = None
    if query.member_key is not None:
        keys = {query.member_key}
    if query.member_id is not None:
        clients = [client] if client is not None else search.client_ids()
        by_id = {member_key_of(c, query.member_id) for c in clients}
        keys = by_id if keys is None else keys & by_id
    return frozenset(keys) if keys is not None else None
