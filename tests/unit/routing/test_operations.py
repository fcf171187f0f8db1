"""How a partner is operated: maintenance windows (one-off and weekly, in the partner's
zone) and suspension, read from an operator's document and used by the route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.endpoints import EndpointPlan
from payerbridge.routing.model import ACTIVE, Operations
from payerbridge.routing.operations import PartnerStatus, parse_operations
from payerbridge.routing.route import decide_route

BASE = "https://old.example/fhir"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
READING = Capabilities(NOW, "4.0.1", {"hrex": "1.1.0"}, frozenset({"member-match", "everything"}))


def test_a_one_off_window_holds_from_its_start_to_its_end() -> None:
    operations = parse_operations(
        {
            "maintenance": [
                {
                    "start": "2026-11-23T06:30:00-05:00",
                    "end": "2026-11-23T08:00:00-05:00",
                    "reason": "upgrade",
                }
            ]
        }
    )
    assert operations.in_maintenance(NOW) == (datetime(2026, 11, 23, 13, 0, tzinfo=UTC), "upgrade")
    assert operations.in_maintenance(NOW - timedelta(minutes=31)) is None
    assert operations.in_maintenance(datetime(2026, 11, 23, 13, 0, tzinfo=UTC)) is None


def test_a_weekly_window_runs_past_midnight_in_the_partners_own_zone() -> None:
    operations = parse_operations(
        {
            "maintenance": [
                {
                    "weekly": "sun",
                    "start": "23:00",
                    "end": "02:00",
                    "zone": "America/New_York",
                    "reason": "weekly",
                }
            ]
        }
    )
    # Sunday 23:30 and Monday 01:30 in New York (UTC-5 in November) are inside.
    sunday_2330 = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)
    monday_0130 = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    end = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert operations.in_maintenance(sunday_2330) == (end, "weekly")
    assert operations.in_maintenance(monday_0130) == (end, "weekly")
    assert operations.in_maintenance(sunday_2330 - timedelta(hours=1)) is None  # 22:30
    assert operations.in_maintenance(NOW) is None  # Monday noon
    # In July New York is UTC-4: the same local window is an hour earlier in UTC.
    july = datetime(2026, 7, 20, 5, 30, tzinfo=UTC)  # Monday 01:30 EDT
    assert operations.in_maintenance(july) == (datetime(2026, 7, 20, 6, 0, tzinfo=UTC), "weekly")


def test_overlapping_windows_wait_for_the_last_to_end_and_say_both_reasons() -> None:
    operations = parse_operations(
        {
            "maintenance": [
                {"start": "2026-11-23T11:00:00Z", "end": "2026-11-23T12:30:00Z", "reason": "db"},
                {"start": "2026-11-23T11:30:00Z", "end": "2026-11-23T13:00:00Z", "reason": "certs"},
            ]
        }
    )
    assert operations.in_maintenance(NOW) == (
        datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
        "db; certs",
    )


def test_every_problem_in_an_operators_document_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_operations(
            {
                "status": "paused",
                "colour": "red",
                "maintenance": [
                    {"start": "2026-11-23T12:00:00", "end": "2026-11-23T13:00:00Z", "reason": "x"},
                    {"start": "2026-11-23T12:00:00Z", "end": "2026-11-23T11:00:00Z", "reason": "x"},
                    {"weekly": "someday", "start": "25:00", "end": "02:00", "zone": "Mars/Olympus"},
                ],
            }
        )
    where = {issue.expression for issue in caught.value.issues}
    assert {
        "colour",
        "status",
        "maintenance[0].start",
        "maintenance[1].end",
        "maintenance[2].reason",
        "maintenance[2].weekly",
        "maintenance[2].start",
        "maintenance[2].zone",
    } <= where


def test_a_document_round_trips() -> None:
    document = {
        "status": "suspended",
        "note": "keys rotated, waiting for their new JWKS",
        "maintenance": [
            {
                "start": "2026-11-23T11:00:00+00:00",
                "end": "2026-11-23T13:00:00+00:00",
                "reason": "db",
            },
            {
                "weekly": "sun",
                "start": "23:00",
                "end": "02:00",
                "zone": "America/New_York",
                "reason": "w",
            },
        ],
        "rate_limit": {"requests": 120, "per_seconds": 60.0},
        "exchange_budget_seconds": 3600.0,
        "contacts": [
            {"name": "Interop desk", "email": "interop@old.example", "phone": None},
            {"name": "On call", "email": None, "phone": "+1 555 0100"},
        ],
    }
    operations = parse_operations(document)
    assert operations.status is PartnerStatus.SUSPENDED
    assert parse_operations(operations.to_json()) == operations
    assert operations.to_json() == document
    # The store reads its kept copy back as the checked document read it.
    assert Operations.from_json(operations.to_json()) == operations
    assert Operations.from_json({}) == parse_operations({}) == ACTIVE


def test_a_partner_in_its_window_is_waited_for_until_it_ends_without_using_the_budget() -> None:
    operations = parse_operations(
        {
            "maintenance": [
                {
                    "start": "2026-11-23T11:00:00Z",
                    "end": "2026-11-23T13:00:00Z",
                    "reason": "upgrade",
                }
            ]
        }
    )
    route = decide_route(BASE, READING, now=NOW, operations=operations)
    assert route.routable and route.planned_wait
    assert route.wait_until == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    shown = route.to_json()["wait"]
    assert shown["until"] == "2026-11-23T13:00:00+00:00" and "maintenance window" in shown["reason"]
    assert "upgrade" in shown["reason"]


def test_an_open_circuit_is_waited_for_and_the_later_of_the_two_waits_wins() -> None:
    open_until = NOW + timedelta(minutes=2)
    route = decide_route(EndpointPlan(BASE, (), open_until), READING, now=NOW)
    assert route.routable and route.wait_until == open_until and not route.planned_wait
    assert "circuit is open" in (route.wait_reason or "")
    assert (
        decide_route(
            EndpointPlan(BASE, (), NOW - timedelta(seconds=1)), READING, now=NOW
        ).wait_until
        is None
    )
    window = parse_operations(
        {
            "maintenance": [
                {"start": "2026-11-23T11:00:00Z", "end": "2026-11-23T13:00:00Z", "reason": "u"}
            ]
        }
    )
    both = decide_route(EndpointPlan(BASE, (), open_until), READING, now=NOW, operations=window)
    assert both.planned_wait and both.wait_until == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def test_a_suspended_partner_has_no_route_and_the_operators_note_is_the_reason() -> None:
    operations = parse_operations({"status": "suspended", "note": "contract under review"})
    route = decide_route(BASE, READING, now=NOW, operations=operations)
    assert not route.routable
    assert route.why_not().startswith(
        "the partner is suspended by an operator: contract under review"
    )


def test_a_rate_limit_lets_a_burst_through_then_spaces_calls_evenly() -> None:
    limit = parse_operations({"rate_limit": {"requests": 3, "per_seconds": 3}}).rate_limit
    assert limit is not None
    due = None
    for _ in range(3):  # the burst
        wait, due = limit.admit(due, NOW)
        assert wait is None
    wait, kept = limit.admit(due, NOW)
    assert wait == NOW + timedelta(seconds=1) and kept == due  # the fourth waits a second
    assert limit.admit(due, NOW + timedelta(seconds=1))[0] is None
    # After a quiet spell the burst is available again, not more.
    later = NOW + timedelta(minutes=5)
    for _ in range(3):
        wait, due = limit.admit(due, later)
        assert wait is None
    assert limit.admit(due, later)[0] is not None


@pytest.mark.parametrize(
    "bad",
    [
        {"requests": 0, "per_seconds": 1},
        {"requests": 2},
        {"requests": True, "per_seconds": 1},
        "10/s",
    ],
)
def test_a_rate_limit_that_is_not_a_count_per_seconds_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_operations({"rate_limit": bad})
    assert caught.value.issues[0].expression == "rate_limit"


def test_a_contact_has_a_name_and_a_way_to_reach_it() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_operations(
            {
                "contacts": [
                    {"name": "", "email": "a@b.example"},
                    {"name": "Desk"},
                    {"name": "Desk", "email": "not an address", "phone": "call me"},
                ]
            }
        )
    where = sorted(issue.expression for issue in refused.value.issues)
    assert where == [
        "contacts[0].name",
        "contacts[1]",
        "contacts[2].email",
        "contacts[2].phone",
    ]
