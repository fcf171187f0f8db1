"""The console's Pulls page in process, on a real database: the standing pulls the next
due first with those the sweep left overdue marked, filtered by status and kind and paged
with what is shown of how many, bad filters as pages, no member data; an operator cancels
an active schedule (audited as ``pull.stopped``, once), a viewer sees no button and is
refused the form."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import httpx
import pytest

from payerbridge.api.app import create_app
from payerbridge.bootstrap import Platform, build_platform, utcnow
from payerbridge.config import load_settings
from payerbridge.exchange.model import ExchangeState, Move, PullKind, PullSchedule, PullStatus
from payerbridge.exchange.moves import Advance, record_moves
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.security.model import Role
from payerbridge.types import ClientId, ExchangeId, PartnerId
from tests.builders import a_submitted_exchange, an_exchange_request
from tests.integration.test_console import (
    BASE,
    Accounts,
    TestClient,
    _nothing,
    csrf,
    events,
    signed_in,
    text_of,
)

MEMBER_KEY = "5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"  # a member's hash: never shown


@pytest.fixture
def platform(
    tmp_path_factory: pytest.TempPathFactory, database_env: Callable[[], dict[str, str]]
) -> Iterator[Platform]:
    """An instance of each test's own: the page counts every schedule there is."""
    env = database_env()
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("console-pulls"),
        database_url=env.get("PAYERBRIDGE_DATABASE_URL"),
    )
    platform = build_platform(settings, partner_transport=httpx.MockTransport(_nothing))
    store_partner(
        StorePartner(Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    yield platform
    platform.close()


@pytest.fixture
def accounts(platform: Platform) -> dict[Role, str]:
    return Accounts(platform)


@pytest.fixture
def browser(platform: Platform) -> Callable[[], TestClient]:
    app = create_app(platform, run_workers=False)
    return lambda: TestClient(app, base_url=BASE, follow_redirects=False)


@dataclass(frozen=True)
class Seeded:
    late: str  # active, two days past due, its pull never started
    pulling: str  # active, two days past due, its pull still running
    later: str  # active, due in a month
    stopped: str  # stopped: revoked
    exchange: ExchangeId  # the pulling schedule's last pull


def a_schedule(name: str, now: datetime, **values: object) -> PullSchedule:
    schedule = PullSchedule(
        id=f"ps-{name}-{uuid.uuid4().hex[:6]}",
        kind=PullKind.QUARTERLY,
        status=PullStatus.ACTIVE,
        partner_id=PartnerId("old-plan"),
        client_id=ClientId("plan"),
        consent_id="consent-1",
        member_key=MEMBER_KEY,
        source_exchange_id=None,
        last_exchange_id=None,
        last_received_at=now - timedelta(days=60),
        next_due_at=now + timedelta(days=30),
        coverage_end=None,
        pulls=1,
        stop_reason=None,
        awaiting_pull=False,
        created_by="test",
        created_at=now - timedelta(days=90),
        updated_at=now,
    )
    return replace(schedule, **values)


def seed(platform: Platform, *more: PullSchedule) -> Seeded:
    now = utcnow()
    running = ExchangeId(
        a_submitted_exchange(platform.units.exchange(), an_exchange_request(), client_id="plan")
    )
    late = a_schedule("late", now, next_due_at=now - timedelta(days=2))
    pulling = a_schedule(
        "pulling",
        now,
        kind=PullKind.FIRST,
        next_due_at=now - timedelta(days=2),
        awaiting_pull=True,
        last_exchange_id=running,
    )
    later = a_schedule("later", now, kind=PullKind.RUN_OFF, coverage_end=now - timedelta(days=9))
    stopped = a_schedule(
        "stopped", now, status=PullStatus.STOPPED, next_due_at=None, stop_reason="revoked"
    )
    request = an_exchange_request()  # what a schedule keeps, sealed: never shown
    with platform.units.exchange() as uow:
        for schedule in (late, pulling, later, stopped, *more):
            uow.pulls.add(schedule, request)
    return Seeded(late.id, pulling.id, later.id, stopped.id, running)


def test_a_viewer_sees_the_schedules_next_due_first_without_member_data_or_the_cancel_button(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    seeded = seed(platform)
    viewer = signed_in(browser, accounts[Role.VIEWER])
    assert 'href="/console/pulls"' in viewer.get("/console/").text  # in the navigation
    page = viewer.get("/console/pulls")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    shown = text_of(page)
    order = [shown.index(f'id="pull-{i}"') for i in (seeded.late, seeded.later, seeded.stopped)]
    assert order == sorted(order)  # the most overdue first, stopped last
    assert "showing 1–4 of 4 schedule(s)" in shown
    late = shown[shown.index(f'id="pull-{seeded.late}"') :].split("</tr>")[0]
    assert ">overdue</span>" in late
    pulling = shown[shown.index(f'id="pull-{seeded.pulling}"') :].split("</tr>")[0]
    assert ">pull running</span>" in pulling and ">overdue<" not in pulling
    assert f'href="/console/exchanges/{seeded.exchange}"' in pulling  # its timeline
    assert "1 schedule(s) on this page are more than a day past due" in shown
    assert "/runbooks/alert-pulls-overdue" in shown
    assert "Garcia" not in shown and "1980-02-03" not in shown and "M123" not in shown
    assert MEMBER_KEY not in shown
    assert "cancel-pull-form" not in shown and "/cancel" not in shown


def test_a_viewer_is_refused_the_cancel_audited_and_a_browser_without_a_session_signs_in(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    seeded = seed(platform)
    action = f"/console/pulls/{seeded.later}/cancel"
    for anonymous in (browser().get("/console/pulls"), browser().post(action, data={})):
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/console/login?why=signin")
    viewer = signed_in(browser, accounts[Role.VIEWER])
    refused = viewer.post(action, data={"csrf_token": csrf(viewer, "/console/pulls")})
    assert refused.status_code == 403
    assert "your role (viewer) does not open this page" in text_of(refused)
    assert platform.units.exchange().pulls.get(seeded.later).status is PullStatus.ACTIVE
    refusals = events(platform, "ConsolePage", f"POST {action}")
    assert [e["actor"] for e in refusals] == [f"console:{accounts[Role.VIEWER]}"]


def test_an_operator_cancels_an_active_schedule_once_and_it_is_audited(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    seeded = seed(platform)
    operator = signed_in(browser, accounts[Role.OPERATOR])
    listed = operator.get("/console/pulls").text
    assert f'action="/console/pulls/{seeded.later}/cancel"' in listed
    assert f'action="/console/pulls/{seeded.stopped}/cancel"' not in listed  # stopped
    token = csrf(operator, "/console/pulls")
    action = f"/console/pulls/{seeded.later}/cancel"
    assert operator.post(action, data={}).status_code == 403  # no token, no cancel
    done = operator.post(action, data={"csrf_token": token})
    assert done.status_code == 303
    after = text_of(operator.get(done.headers["location"]))
    assert f"pull schedule {seeded.later} was cancelled" in after
    stopped = platform.units.exchange().pulls.get(seeded.later)
    assert (stopped.status, stopped.stop_reason) == (PullStatus.STOPPED, "cancelled")
    assert platform.units.exchange().pulls.request(seeded.later) is None  # its request is cut
    again = operator.post(action, data={"csrf_token": token})
    assert again.status_code == 409 and "stopped already (cancelled)" in text_of(again)
    gone = operator.post("/console/pulls/no-such-schedule/cancel", data={"csrf_token": token})
    assert gone.status_code == 404
    trail = events(platform, "PullSchedule", seeded.later)
    assert [(e["action"], e["actor"], e["detail"]["reason"]) for e in trail] == [
        ("pull.stopped", f"console:{accounts[Role.OPERATOR]}", "cancelled")
    ]


def test_the_list_is_filtered_by_status_and_kind_and_paged(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    now = utcnow()
    many = [
        a_schedule(f"many{n:02}", now, next_due_at=now + timedelta(days=40 + n)) for n in range(50)
    ]
    seeded = seed(platform, *many)
    viewer = signed_in(browser, accounts[Role.VIEWER])

    stopped = text_of(viewer.get("/console/pulls", params={"status": "stopped"}))
    assert f'id="pull-{seeded.stopped}"' in stopped and f'id="pull-{seeded.late}"' not in stopped
    assert "showing 1–1 of 1 schedule(s) (stopped, any kind)" in stopped
    run_off = text_of(viewer.get("/console/pulls", params={"status": "active", "kind": "run-off"}))
    assert f'id="pull-{seeded.later}"' in run_off and run_off.count('<tr id="pull-') == 1
    none = text_of(viewer.get("/console/pulls", params={"status": "stopped", "kind": "first"}))
    assert "no pull schedule of this status and kind" in none
    every = text_of(viewer.get("/console/pulls", params={"status": "", "kind": ""}))  # "any"
    assert "showing 1–50 of 54 schedule(s)" in every and every.count('<tr id="pull-') == 50
    quarterly = viewer.get("/console/pulls", params={"kind": "quarterly", "offset": 50})
    rest = text_of(quarterly)
    assert "showing 51–52 of 52 schedule(s) (any status, quarterly)" in rest
    assert 'href="?kind=quarterly&amp;offset=0">previous' in quarterly.text


def test_the_page_marks_late_schedules_as_the_overdue_gauge_counts_them(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    """One rule (``store.pull_lateness``) on the same rows: the page marks each
    schedule overdue, pulling or neither, and the gauge counts those it marks overdue."""
    now = utcnow()
    ago = now - timedelta(days=2)

    def last_pull(*path: ExchangeState) -> ExchangeId:
        exchange_id = ExchangeId(
            a_submitted_exchange(platform.units.exchange(), an_exchange_request(), client_id="plan")
        )
        moves = [Move(state, "x" if state is ExchangeState.FAILED else None) for state in path]
        with platform.units.exchange() as uow:
            record_moves(uow, Advance(exchange_id, moves, now, "test"))
        return exchange_id

    S = ExchangeState
    review = last_pull(S.VALIDATED, S.CONSENT_VERIFIED, S.ROUTE_SELECTED, S.MANUAL_REVIEW)
    cases = {  # name: (what the schedule is, its mark)
        "in-review": (dict(awaiting_pull=True, last_exchange_id=review), "pulling"),
        "ended": (dict(awaiting_pull=True, last_exchange_id=last_pull(S.FAILED)), "overdue"),
        "gone": (dict(awaiting_pull=True, last_exchange_id="ex-gone"), "overdue"),
        "no-pull": (dict(awaiting_pull=True), "overdue"),
        "not-awaited": (dict(last_exchange_id=last_pull()), "overdue"),  # running, unread
        "just-due": (dict(next_due_at=now - timedelta(hours=23)), None),
        "stopped-late": (dict(status=PullStatus.STOPPED, stop_reason="revoked"), None),
    }
    made = {
        name: a_schedule(name, now, **{"next_due_at": ago, **v}) for name, (v, _) in cases.items()
    }
    seeded = seed(platform, *made.values())
    expected = {made[name].id: mark for name, (_, mark) in cases.items()}
    expected |= {seeded.late: "overdue", seeded.pulling: "pulling"}
    expected |= {seeded.later: None, seeded.stopped: None}

    shown = text_of(signed_in(browser, accounts[Role.VIEWER]).get("/console/pulls"))
    marks = {}
    for schedule_id in expected:
        row = shown[shown.index(f'id="pull-{schedule_id}"') :].split("</tr>")[0]
        badges = {">overdue</span>": "overdue", ">pull running</span>": "pulling"}
        found = [mark for badge, mark in badges.items() if badge in row]
        marks[schedule_id] = found[0] if found else None
    assert marks == expected
    overdue = sum(mark == "overdue" for mark in expected.values())
    assert platform.metrics.snapshot().readings.pull_schedules.overdue == overdue == 5
    assert f"{overdue} schedule(s) on this page are more than a day past due" in shown


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("status=lost", "'lost' is no status of a pull schedule; one of active, stopped"),
        ("kind=weekly", "'weekly' is no kind of a pull schedule; one of first, quarterly, run-off"),
        ("offset=-1", "offset"),
        ("offset=later", "offset"),
    ],
)
def test_a_bad_filter_gets_a_page_that_says_what_is_wrong(
    browser: Callable[[], TestClient], accounts: dict[Role, str], query: str, text: str
) -> None:
    answer = signed_in(browser, accounts[Role.AUDITOR]).get(f"/console/pulls?{query}")
    assert answer.status_code == 400, answer.text[:500]
    assert text in text_of(answer) and "text/html" in answer.headers["content-type"]
