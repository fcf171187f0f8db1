"""An exchange search as its query parameters say it (pure): every parameter checked,
every unknown, repeated or malformed one named in one InvalidInput, none ignored.

    member=<our member id>  member_key=<40 hex>  partner=<id>  client=<id>
    request_id=<X-Request-ID that submitted it>  state=<s>[,<s>...]  reason=<code>[,...]
    created=[ge|gt|le|lt|eq]<date or instant>  (twice for a range; updated= alike)
    _count=1..500  _cursor=<the next link's>

Dates follow FHIR's date search: a prefix, then ``YYYY-MM-DD`` (a UTC day) or an
instant with its offset (``2026-03-01T10:00:00Z``), each meaning the range of its
precision (a day, a second, a microsecond).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from payerbridge.errors import InvalidInput, Issue
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    DateRange,
    ExchangeCursor,
    ExchangeQuery,
)
from payerbridge.timestamps import date_search_range
from payerbridge.types import ClientId, PartnerId

__all__ = ["SEARCH_PARAMETERS", "exchange_query"]

_ID = re.compile(r"^[A-Za-z0-9._~:@/+=-]{1,200}$")  # printable ids: no spaces, commas
_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_KEY = re.compile(r"^[0-9a-f]{40}$")
_STATES = {state.value: state for state in ExchangeState}


class _Problems:
    """The issues found so far, each naming its parameter."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, name: str, text: str, code: str = "invalid") -> None:
        self.issues.append(Issue(f"{name}: {text}", name, code))


def _one_id(name: str, limit: int) -> Callable[[str, _Problems], str | None]:
    def read(value: str, problems: _Problems) -> str | None:
        if len(value) > limit or not _ID.match(value):
            problems.add(name, f"give an id of 1 to {limit} characters, without spaces or commas")
            return None
        return value

    return read


def _member_key(value: str, problems: _Problems) -> str | None:
    if not _KEY.match(value):
        problems.add("member_key", "give the 40 lowercase hex digits an exchange shows")
        return None
    return value


def _states(value: str, problems: _Problems) -> frozenset[ExchangeState] | None:
    names = value.split(",")
    unknown = [n for n in names if n not in _STATES]
    if unknown:
        problems.add("state", f"'{unknown[0][:40]}' is no state; one of {', '.join(_STATES)}")
        return None
    return frozenset(_STATES[n] for n in names)


def _reasons(value: str, problems: _Problems) -> frozenset[str] | None:
    codes = value.split(",")
    if not all(_CODE.match(code) for code in codes):
        problems.add(
            "reason", "give reason codes (lowercase letters, digits, '-'), comma-separated"
        )
        return None
    return frozenset(codes)


def _count(value: str, problems: _Problems) -> int | None:
    if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        problems.add("_count", f"give a whole number from 1 to {MAX_COUNT}")
        return None
    return int(value)


def _cursor(value: str, problems: _Problems) -> ExchangeCursor | None:
    try:
        return ExchangeCursor.decode(value)
    except ValueError:
        problems.add("_cursor", "follow the 'next' link as given; this cursor is not one of ours")
        return None


def _date_range(name: str) -> Callable[[str, _Problems], DateRange | None]:
    def read(value: str, problems: _Problems) -> DateRange | None:
        try:
            start, end = date_search_range(value)
        except ValueError:
            problems.add(
                name,
                "give [eq|ge|gt|le|lt] and a date (2026-03-01) or an instant with its "
                "offset (2026-03-01T10:00:00Z)",
            )
            return None
        return DateRange(start, end)

    return read


# Each parameter: its reader and how many times it may be given.
_READERS: dict[str, tuple[Callable[[str, _Problems], Any], int]] = {
    "member": (_one_id("member", 64), 1),
    "member_key": (_member_key, 1),
    "partner": (_one_id("partner", 64), 1),
    "client": (_one_id("client", 200), 1),
    "request_id": (_one_id("request_id", 128), 1),
    "state": (_states, 1),
    "reason": (_reasons, 1),
    "created": (_date_range("created"), 2),
    "updated": (_date_range("updated"), 2),
    "_count": (_count, 1),
    "_cursor": (_cursor, 1),
}
SEARCH_PARAMETERS = tuple(_READERS)


def exchange_query(params: Iterable[tuple[str, str]]) -> ExchangeQuery:
    """The query ``params`` (name, value pairs, as a query string gives them) ask for;
    InvalidInput naming every parameter that is unknown, repeated, empty or malformed."""
    problems = _Problems()
    given: dict[str, list[Any]] = {}
    for name, value in params:
        if name not in _READERS:
            hint = " (pages follow 'next' now)" if name == "_offset" else ""
            known = ", ".join(SEARCH_PARAMETERS)
            problems.add(name[:40], f"unknown parameter{hint}; known: {known}", "not-supported")
            continue
        reader, most = _READERS[name]
        values = given.setdefault(name, [])
        if len(values) >= most:
            problems.add(name, f"given more than {most} time(s)")
        elif not value:
            problems.add(name, "empty: give a value or leave the parameter out", "required")
        elif (read := reader(value, problems)) is not None:
            values.append(read)
    if problems.issues:
        raise InvalidInput("the exchange search has bad parameters", issues=problems.issues)
    return _query(given)


def _query(given: dict[str, list[Any]]) -> ExchangeQuery:
    def one(name: str) -> Any:
        return given[name][0] if given.get(name) else None

    created, updated = DateRange(), DateRange()
    for bound in given.get("created", []):
        created = created.narrowed(bound)
    for bound in given.get("updated", []):
        updated = updated.narrowed(bound)
    return ExchangeQuery(
        client_id=ClientId(one("client")) if one("client") else None,
        member_id=one("member"),
        member_key=one("member_key"),
        partner_id=PartnerId(one("partner")) if one("partner") else None,
        request_id=one("request_id"),
        states=one("state") or frozenset(),
        reason_codes=one("reason") or frozenset(),
        created=created,
        updated=updated,
        count=one("_count") or DEFAULT_COUNT,
        after=one("_cursor"),
    )
