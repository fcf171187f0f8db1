"""The exchange search's parameters: each read as FHIR's date search reads dates, and
every unknown, repeated, empty or malformed one named, none ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.search import DateRange, ExchangeCursor
from payerbridge.exchange.operations.search_params import exchange_query
from payerbridge.types import ExchangeId

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _problems(*params: tuple[str, str]) -> list[tuple[str | None, str | None]]:
    with pytest.raises(InvalidInput) as refused:
        exchange_query(params)
    return [(issue.expression, issue.code) for issue in refused.value.issues]


def test_every_parameter_is_read() -> None:
    cursor = ExchangeCursor(T0, ExchangeId("x1"))
    query = exchange_query(
        [
            ("member", "M-1"),
            ("partner", "old-1"),
            ("client", "plan-a"),
            ("request_id", "3f1c0c3e-6a8e"),
            ("state", "failed,dead_lettered"),
            ("reason", "no-route"),
            ("created", "ge2026-03-01"),
            ("created", "lt2026-03-02T10:30:00+02:00"),
            ("updated", "2026-03-05T10:00:00.5Z"),
            ("_count", "10"),
            ("_cursor", cursor.encode()),
        ]
    )
    assert (query.member_id, query.partner_id, query.client_id) == ("M-1", "old-1", "plan-a")
    assert query.request_id == "3f1c0c3e-6a8e"
    assert query.states == {ExchangeState.FAILED, ExchangeState.DEAD_LETTERED}
    assert query.reason_codes == {"no-route"} and query.count == 10 and query.after == cursor
    assert query.created == DateRange(T0, datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    half = datetime(2026, 3, 5, 10, 0, 0, 500_000, tzinfo=UTC)
    assert query.updated == DateRange(half, half + timedelta(microseconds=1))
    assert exchange_query([]).count == 50 and exchange_query([]).after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01", DateRange(T0, T0 + timedelta(days=1))),
        ("eq2026-03-01", DateRange(T0, T0 + timedelta(days=1))),
        ("gt2026-03-01", DateRange(T0 + timedelta(days=1), None)),
        ("le2026-03-01", DateRange(None, T0 + timedelta(days=1))),
        ("lt2026-03-01", DateRange(None, T0)),
        ("ge2026-03-01T00:00Z", DateRange(T0, None)),
        ("2026-03-01T00:00:00Z", DateRange(T0, T0 + timedelta(seconds=1))),
        ("gt2026-03-01T00:00-01:00", DateRange(T0 + timedelta(hours=1, minutes=1), None)),
    ],
)
def test_dates_mean_the_range_of_their_precision(value: str, expected: DateRange) -> None:
    assert exchange_query([("created", value)]).created == expected


def test_every_bad_parameter_is_named_at_once() -> None:
    found = _problems(
        ("name", "Jane"),  # never searched by name
        ("_offset", "50"),
        ("state", "done"),
        ("reason", "No Route"),
        ("created", "yesterday"),
        ("updated", "2026-03-01T10:00:00"),  # an instant needs its offset
        ("_count", "0"),
        ("_cursor", "bm90IGEgY3Vyc29y"),
        ("member", ""),
        ("member_key", "ABC"),
        ("partner", "old 1"),
    )
    assert found == [
        ("name", "not-supported"),
        ("_offset", "not-supported"),
        ("state", "invalid"),
        ("reason", "invalid"),
        ("created", "invalid"),
        ("updated", "invalid"),
        ("_count", "invalid"),
        ("_cursor", "invalid"),
        ("member", "required"),
        ("member_key", "invalid"),
        ("partner", "invalid"),
    ]


@pytest.mark.parametrize(
    "params",
    [
        [("partner", "a"), ("partner", "b")],
        [("created", "ge2026-01-01"), ("created", "lt2026-02-01"), ("created", "2026-01-05")],
        [("_count", "501")],
        [("_count", "-1")],
        [("created", "2026-02-30")],
        [("client", "x" * 201)],
    ],
)
def test_repeated_or_out_of_range_values_are_refused(params: list[tuple[str, str]]) -> None:
    assert len(_problems(*params)) == 1


def test_the_cursor_round_trips_and_refuses_what_it_did_not_write() -> None:
    cursor = ExchangeCursor(T0, ExchangeId("x-1"))
    assert ExchangeCursor.decode(cursor.encode()) == cursor
    for forged in ("", "@@@", "MjAyNi0wMy0wMQ", "MjAyNi0wMy0wMVQwMDowMDowMHw"):
        with pytest.raises(ValueError, match="not a cursor"):
            ExchangeCursor.decode(forged)


def test_a_date_range_narrows_to_both_bounds() -> None:
    start, end = DateRange(T0, None), DateRange(None, T0 + timedelta(days=2))
    assert start.narrowed(end) == DateRange(T0, T0 + timedelta(days=2))
    assert DateRange(T0, T0).narrowed(DateRange(T0 - timedelta(1), None)).start == T0
