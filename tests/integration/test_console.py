"""The operator console in process, on a real database: signing in and out, sessions
that end, the CSRF check, each role's pages and refusals, bad input as pages, and the
actions that do not need a worker (cancel, revoke, suspend). The browser drives the rest
against a real server (tests/e2e/test_console_browser.py)."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():  # Starlette 1.x would have httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from payerbridge.api.app import create_app
from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform, audit_checkpointer, build_platform, utcnow
from payerbridge.config import load_settings
from payerbridge.delivery.model import DeliveryReason, DestinationAnswer
from payerbridge.delivery.service import DeliverOnce, deliver_once
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.errors import NotFound, TooManyAttempts, Unauthenticated
from payerbridge.exchange.model import ExchangeState, Move, Stamp
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import EndpointStatus, Partner, PartnerEndpoint
from payerbridge.security.limits import RateLimiter
from payerbridge.security.model import Rate, Role
from payerbridge.security.operator_accounts import (
    LOGIN_RATES,
    AccountAction,
    AddOperator,
    SignIn,
    add_operator,
    disable_operator,
    log_in,
    unlock_operator,
)
from payerbridge.security.operators import BreakGlassPolicy, name_digest
from payerbridge.store.deliveries import SqlDeliveryStore
from payerbridge.store.rate_limits import SqlAllowances
from payerbridge.types import ExchangeId, PartnerId
from tests.builders import a_submitted_exchange, an_exchange_request

PASSWORD = "a long enough password"
BASE = "http://127.0.0.1:8080"


@contextmanager
def operators_as(platform: Platform, **changes: Any) -> Iterator[None]:
    """The console's accounts with ``changes`` (a clock, a break-glass policy) for a
    while: in the unit of work each request builds (``platform.units.operators()``) as
    in the platform's own."""
    before, units = platform.operators, platform.units
    platform.operators = dataclasses.replace(before, **changes)
    platform.units = dataclasses.replace(
        units, operator_unit=dataclasses.replace(units.operator_unit, **changes)
    )
    try:
        yield
    finally:
        platform.operators, platform.units = before, units


def _nothing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"resourceType": "OperationOutcome"})


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_env: Callable[[], dict[str, str]],
) -> Iterator[Platform]:
    """One instance the module's tests share: each signs in with accounts of its own."""
    env = module_database_env()
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("console"),
        database_url=env.get("PAYERBRIDGE_DATABASE_URL"),
    )
    platform = build_platform(settings, partner_transport=httpx.MockTransport(_nothing))
    store_partner(
        StorePartner(Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    yield platform
    platform.close()


def an_account(platform: Platform, role: Role) -> str:
    """A new account of ``role``, named after it."""
    name = f"{role.value}-{uuid.uuid4().hex[:8]}"
    add_operator(AddOperator(name, role, PASSWORD, "test"), platform.units.operators())
    return name


class Accounts(dict[Role, str]):
    """This test's accounts, one per role, made when first asked for (each is an argon2
    hash; and a name signs in only so often)."""

    def __init__(self, platform: Platform) -> None:
        super().__init__()
        self.platform = platform

    def __missing__(self, role: Role) -> str:
        self[role] = name = an_account(self.platform, role)
        return name


@pytest.fixture
def accounts(platform: Platform) -> dict[Role, str]:
    return Accounts(platform)


@pytest.fixture(scope="module")
def browser(platform: Platform) -> Callable[[], TestClient]:
    """A new browser on the console (its lifespan, the workers, is not started)."""
    app = create_app(platform, run_workers=False)
    return lambda: TestClient(app, base_url=BASE, follow_redirects=False)


def _token(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"login_token": _token(form.text, "login_token"), "name": name, "password": password},
    )


def signed_in(make: Callable[[], TestClient], name: str) -> TestClient:
    client = make()
    assert sign_in(client, name).status_code == 303
    return client


def csrf(client: TestClient, page: str = "/console/") -> str:
    return _token(client.get(page).text, "csrf_token")


def text_of(answer: httpx.Response) -> str:
    """A page's text as a person reads it (entities unescaped)."""
    return html.unescape(answer.text)


def events(platform: Platform, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    return platform.audit.for_entity(entity_type, entity_id)


def test_signing_in_opens_the_page_asked_for_and_signing_out_ends_the_session(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    viewer = accounts[Role.VIEWER]
    client = browser()
    asked = client.get("/console/exchanges?state=failed")
    assert asked.status_code == 303
    assert asked.headers["location"].startswith("/console/login?why=signin&next=")
    login = client.get(asked.headers["location"])
    assert 'value="/console/exchanges?state=failed"' in login.text
    done = client.post(
        "/console/login",
        data={
            "login_token": _token(login.text, "login_token"),
            "name": viewer,
            "password": PASSWORD,
            "next": "/console/exchanges?state=failed",
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/exchanges?state=failed"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert client.get("/console/").status_code == 200
    out = client.post("/console/logout", data={"csrf_token": csrf(client)})
    assert out.headers["location"] == "/console/login?why=signedout"
    assert client.get("/console/").status_code == 303
    actor = f"console:{viewer}"
    actions = [
        (e["action"], e["outcome"], e["actor"]) for e in events(platform, "Operator", viewer)
    ]
    assert ("console.login", "success", actor) in actions
    assert ("console.logout", "success", actor) in actions


def test_a_wrong_password_or_name_says_the_same_and_guessing_is_throttled(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    client = browser()
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    wrong = sign_in(client, accounts[Role.VIEWER], "not the password at all")
    unknown = sign_in(client, nobody, PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    text = "the name or the password is wrong, or the account is disabled"
    assert text in wrong.text and text in unknown.text
    failures = events(platform, "Operator", name_digest(nobody))
    assert [(e["action"], e["detail"]["reason"]) for e in failures] == [
        ("console.login", "unknown-name")
    ]
    assert nobody not in str(failures)  # a typed name is kept as its digest
    guessed = an_account(platform, Role.REVIEWER)
    answers = [sign_in(client, guessed, "wrong password, again").status_code for _ in range(6)]
    assert answers[:5] == [401] * 5 and answers[5] == 429
    assert "too many sign-ins" in sign_in(client, guessed).text  # even the right password


def test_a_guesser_slows_only_their_own_address_and_another_operator_unlocks_the_name(
    platform: Platform,
) -> None:
    """The throttle's buckets, through the use case (the HTTP client has one address):
    a guesser from one address spends the (name, address) bucket alone; the name's own
    bucket bounds many addresses together, and an unlock fills both again."""
    uow = platform.units.operators()
    owner = an_account(platform, Role.OPERATOR)

    def attempt(address: str, password: str = "not the password at all") -> str:
        try:
            log_in(SignIn(owner, password, uuid.uuid4().hex, address), uow)
        except Unauthenticated:
            return "wrong"
        except TooManyAttempts as exc:
            assert "unlock" in exc.text or "more often than" in exc.text
            return "slowed"
        return "in"

    guesser = f"198.51.100.{uuid.uuid4().int % 250}"
    assert [attempt(guesser) for _ in range(6)] == ["wrong"] * 5 + ["slowed"]
    assert attempt(guesser, PASSWORD) == "slowed"  # the guesser's address, even right
    assert attempt("203.0.113.9", PASSWORD) == "in"  # the owner, from their own
    # Many addresses together spend the name's bucket (here 8 at once): then the owner
    # is slowed too, until another operator unlocks the account.
    tight = dataclasses.replace(
        LOGIN_RATES,
        operations={**LOGIN_RATES.operations, "console sign-in by name": Rate(1 / 30, 8)},
    )
    allowances = SqlAllowances(platform.engine)
    uow = dataclasses.replace(uow, logins=RateLimiter(tight, allowances))
    owner = an_account(platform, Role.OPERATOR)
    addresses = [f"192.0.2.{n}" for n in range(1, 5)]
    assert [attempt(a) for a in addresses for _ in range(2)] == ["wrong"] * 8
    assert attempt("203.0.113.10", PASSWORD) == "slowed"
    assert unlock_operator(AccountAction(owner, "cli:admin"), uow) >= 5
    # The shared buckets are full again: a process that did not see them empty lets the
    # owner in (one that did waits out the interval it computed, at most 30 s).
    uow = dataclasses.replace(uow, logins=RateLimiter(tight, allowances))
    assert attempt("203.0.113.10", PASSWORD) == "in"
    trail = [(e["action"], e["actor"]) for e in events(platform, "Operator", owner)]
    assert ("operator.unlock", "cli:admin") in trail
    with pytest.raises(NotFound):
        unlock_operator(AccountAction("no-such-operator", "cli:admin"), uow)


def test_the_sign_in_form_needs_its_own_token_and_forms_need_the_sessions(
    browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    client = browser()
    forged = client.post(
        "/console/login", data={"name": accounts[Role.VIEWER], "password": PASSWORD}
    )
    assert forged.status_code == 403 and "sign-in form is out of date" in forged.text
    client = signed_in(browser, accounts[Role.OPERATOR])
    other = signed_in(browser, accounts[Role.VIEWER])
    missing = client.post("/console/logout", data={})
    foreign = client.post("/console/logout", data={"csrf_token": csrf(other)})
    assert missing.status_code == foreign.status_code == 403
    assert "security token is missing or out of date" in missing.text
    cross_site = client.post(
        "/console/logout",
        data={"csrf_token": csrf(client)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    fetched = client.post(
        "/console/logout",
        data={"csrf_token": csrf(client)},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": BASE},
    )
    assert fetched.status_code == 403
    assert client.get("/console/").status_code == 200  # none of them signed it out


def test_a_session_ends_when_idle_too_long_or_too_old_or_its_account_is_disabled(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    viewer = an_account(platform, Role.VIEWER)
    client = signed_in(browser, viewer)
    policy = platform.operators.sessions
    for shift, why in ((policy.idle + timedelta(seconds=1), "idle"), (policy.absolute, "expired")):
        with operators_as(platform, clock=lambda s=shift: utcnow() + s):
            answer = client.get("/console/")
        assert answer.status_code == 303 and f"why={why}" in answer.headers["location"]
        assert client.get("/console/").status_code == 200  # back in time: still live
    disable_operator(AccountAction(viewer, "test"), platform.units.operators())
    ended = client.get("/console/")
    assert ended.status_code == 303 and "why=ended" in ended.headers["location"]
    assert "your session has ended" in client.get(ended.headers["location"]).text
    assert sign_in(browser(), viewer).status_code == 401


PAGES = {
    "/console/": Role.VIEWER,
    "/console/?period=7d": Role.VIEWER,
    "/console/?period=30d": Role.VIEWER,
    "/console/exchanges": Role.VIEWER,
    "/console/waiting": Role.VIEWER,
    "/console/waiting?view=askable": Role.VIEWER,
    "/console/jobs": Role.VIEWER,
    "/console/consents": Role.VIEWER,
    "/console/partners": Role.OPERATOR,
    "/console/partners/old-plan": Role.OPERATOR,
    "/console/health": Role.OPERATOR,
    "/console/audit": Role.AUDITOR,
    "/console/audit?entity_type=Partner&entity_id=old-plan": Role.AUDITOR,
}


def test_each_role_opens_its_pages_and_is_refused_the_others(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    a_submitted_exchange(platform.units.exchange(), an_exchange_request(), client_id="plan")
    clients = {role: signed_in(browser, accounts[role]) for role in Role}
    for page, needs in PAGES.items():
        for role, client in clients.items():
            answer = client.get(page)
            may = needs is Role.VIEWER or role is needs
            assert answer.status_code == (200 if may else 403), (page, role, answer.text[:300])
            assert answer.headers["content-security-policy"].startswith("default-src 'self'")
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["cache-control"] == "no-store"
            if not may:
                assert f"your role ({role.value}) does not open this page" in text_of(answer)
    refused = {e["actor"] for e in events(platform, "ConsolePage", "GET /console/audit")}
    others = {f"console:{accounts[r]}" for r in (Role.VIEWER, Role.REVIEWER, Role.OPERATOR)}
    assert others <= refused and f"console:{accounts[Role.AUDITOR]}" not in refused
    nav = clients[Role.VIEWER].get("/console/").text
    assert 'href="/console/partners"' not in nav and 'href="/console/exchanges"' in nav
    assert 'href="/console/reviews"' in clients[Role.REVIEWER].get("/console/").text
    static = clients[Role.VIEWER].get("/console/static/console.css")
    assert static.status_code == 200
    assert "default-src 'self'" in static.headers["content-security-policy"]


@pytest.fixture(scope="module")
def an_auditor(platform: Platform, browser: Callable[[], TestClient]) -> TestClient:
    return signed_in(browser, an_account(platform, Role.AUDITOR))


@pytest.mark.parametrize(
    ("page", "status", "text"),
    [
        ("/console/exchanges?from=yesterday", 400, "created: give [eq|ge|gt|le|lt] and a date"),
        ("/console/exchanges?state=lost", 400, "'lost' is no state"),
        ("/console/exchanges?cursor=nonsense", 400, "this cursor is not one of ours"),
        ("/console/exchanges/no-such-exchange", 404, "no-such-exchange"),
        ("/console/waiting?view=everything", 400, "'everything' is no list here"),
        ("/console/waiting?cursor=%25%25", 400, "this page link is not one of ours"),
        ("/console/jobs?jobs_offset=-1", 400, "jobs_offset"),
        ("/console/jobs?job_status=lost", 400, "job_status"),
        ("/console/?period=1y", 400, "period"),
        ("/console/consents?member_id=a%20b", 400, "member_id"),
        ("/console/audit?entity_type=a%20b&entity_id=x", 400, "entity_type"),
        ("/console/audit?entity_type=Partner&entity_id=old-plan&offset=x", 400, "offset"),
        ("/console/consents?member_id=N1&offset=-5", 400, "offset"),
        ("/console/no-such-page", 404, "no such page"),
    ],
)
def test_bad_input_gets_a_page_that_says_what_is_wrong(
    an_auditor: TestClient, page: str, status: int, text: str
) -> None:
    answer = an_auditor.get(page)
    assert answer.status_code == status, answer.text[:500]
    assert text in text_of(answer) and "text/html" in answer.headers["content-type"]


def test_an_exchange_is_found_by_its_member_and_its_page_shows_its_timeline_audited(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    client_id = f"plan-{uuid.uuid4().hex[:8]}"
    exchange_id = a_submitted_exchange(
        platform.units.exchange(), an_exchange_request(), client_id=client_id
    )
    client = signed_in(browser, accounts[Role.VIEWER])
    found = client.get("/console/exchanges", params={"member": "N1", "client": client_id})
    assert found.status_code == 200 and f"/console/exchanges/{exchange_id}" in found.text
    assert ">1 exchange<" in found.text
    other = client.get("/console/exchanges", params={"member": "N2", "client": client_id})
    assert exchange_id not in other.text and "nothing found" in other.text
    page = client.get(f"/console/exchanges/{exchange_id}")
    assert page.status_code == 200 and 'data-action="exchange.transition"' in page.text
    assert "Garcia" not in page.text  # the request's demographics are not shown
    assert 'id="replay-form"' not in page.text  # a viewer acts on nothing
    views = [e for e in events(platform, "Exchange", exchange_id) if e["action"] == "console.view"]
    assert [e["actor"] for e in views] == [f"console:{accounts[Role.VIEWER]}"]

    # Its delivery to the plan's FHIR server (ADR 0053), refused there: state, reason
    # code with its runbook and the destination's issue codes, audited.
    with delivering_to(platform, _Refusing()) as unit:
        with unit:
            opened = unit.deliveries.open(
                unit, subject=f"exchange:{exchange_id}", destination_id="plan-fhir", run=0
            )
        later = utcnow() + timedelta(minutes=1)
        assert opened in unit.deliveries.overdue(before=later)  # for the sweep, till it ends
        assert deliver_once(DeliverOnce(opened), unit) is None
        assert opened not in unit.deliveries.overdue(before=later)
        page = client.get(f"/console/exchanges/{exchange_id}")
    assert 'id="delivery"' in page.text and 'data-destination="plan-fhir"' in page.text
    assert "/runbooks/destination-refused" in page.text and "(processing)" in page.text
    (ended,) = [
        e for e in events(platform, "Exchange", exchange_id) if e["action"] == "exchange.delivery"
    ]
    assert ended["outcome"] == "refused"
    assert ended["detail"]["reason_code"] == "destination-refused"
    assert ended["detail"]["issue_codes"] == ["processing"]


class _Refusing:
    """A destination that refuses every transaction with an OperationOutcome."""

    id = "plan-fhir"
    types = None

    def post_transaction(self, bundle: dict[str, Any]) -> DestinationAnswer:
        assert bundle["type"] == "transaction" and bundle["entry"]
        return DestinationAnswer(
            status=422, reason=DeliveryReason.REFUSED, issue_codes=("processing",)
        )


class _Held:
    def batches(self, subject: str) -> Iterator[list[dict[str, Any]]]:
        yield [{"resourceType": "Patient", "id": "p1"}]

    def by_refs(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        return []


@contextmanager
def delivering_to(platform: Platform, destination: Any) -> Iterator[DestinationUnit]:
    """The platform with one destination for a while (its unit, as the workflows and
    the pages get it)."""
    units = platform.units
    unit = DestinationUnit(
        platform.transactions,
        SqlDeliveryStore(platform.engine, reader=platform.reader),
        units.exchange_wiring.exchanges,
        _Held(),
        {destination.id: destination},
    )
    platform.units = dataclasses.replace(units, destination_unit=unit)
    try:
        yield unit
    finally:
        platform.units = units


def test_an_action_on_a_stale_page_or_a_state_that_refuses_it_is_shown_not_done(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    exchange_id = a_submitted_exchange(
        platform.units.exchange(), an_exchange_request(), client_id="plan"
    )
    client = signed_in(browser, accounts[Role.OPERATOR])
    token = csrf(client, f"/console/exchanges/{exchange_id}")
    action = f"/console/exchanges/{exchange_id}"
    stale = client.post(
        f"{action}/replay",
        data={"csrf_token": token, "shown_state": "dead_lettered", "replay_key": "k1"},
    )
    assert stale.status_code == 409 and "moved from" in text_of(stale)
    refused = client.post(
        f"{action}/replay",
        data={"csrf_token": token, "shown_state": "submitted", "replay_key": "k1"},
    )
    assert refused.status_code == 409 and "can be replayed" in text_of(refused)
    no_note = client.post(
        f"{action}/cancel", data={"csrf_token": token, "shown_state": "submitted", "note": " "}
    )
    assert no_note.status_code == 400 and "say why the exchange is cancelled" in no_note.text
    viewer = signed_in(browser, accounts[Role.VIEWER])
    forbidden = viewer.post(
        f"{action}/cancel",
        data={"csrf_token": csrf(viewer), "shown_state": "submitted", "note": "test"},
    )
    assert forbidden.status_code == 403
    assert platform.exchanges.get(exchange_id).state.value == "submitted"


def test_an_operator_revokes_a_consent_once_and_its_exchange_stops(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    member = f"M{uuid.uuid4().hex[:8]}"
    raw = an_exchange_request()
    raw["new_coverage"] = {**raw["new_coverage"], "member_id": member}
    exchange_id = a_submitted_exchange(platform.units.exchange(), raw, client_id="plan")
    consent_id = platform.exchanges.get(exchange_id).consent_id
    assert consent_id is not None
    client = signed_in(browser, accounts[Role.OPERATOR])
    listed = client.get("/console/consents", params={"member_id": member})
    assert consent_id in listed.text and 'class="inline revoke-form"' in listed.text
    token = csrf(client, "/console/consents")
    form = {"csrf_token": token, "shown_status": "active"}
    done = client.post(f"/console/consents/{consent_id}/revoke", data=form)
    assert done.status_code == 303
    shown = text_of(client.get(done.headers["location"]))
    assert "the consent was revoked; 1 exchange(s) under it were stopped" in shown
    assert platform.exchanges.get(exchange_id).state.value == "blocked"
    again = client.post(f"/console/consents/{consent_id}/revoke", data=form)
    assert again.status_code == 409 and "revoked already" in again.text
    trail = events(platform, "Consent", consent_id)
    revoked = [e for e in trail if e["action"] == "consent.revoked"]
    assert [e["actor"] for e in revoked] == [f"console:{accounts[Role.OPERATOR]}"]


def test_an_operator_suspends_and_resumes_a_partner_and_a_failed_refresh_is_shown(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    client = signed_in(browser, accounts[Role.OPERATOR])
    token = csrf(client, "/console/partners/old-plan")
    status = "/console/partners/old-plan/status"
    no_note = client.post(status, data={"csrf_token": token, "status": "suspended"})
    assert no_note.status_code == 400 and "say why the partner is suspended" in no_note.text
    suspended = client.post(
        status, data={"csrf_token": token, "status": "suspended", "note": "their outage"}
    )
    page = client.get(suspended.headers["location"])
    assert 'id="partner-status">suspended' in page.text and "their outage" in page.text
    resumed = client.post(status, data={"csrf_token": token, "status": "active"})
    assert 'id="partner-status">active' in client.get(resumed.headers["location"]).text
    failed = client.post("/console/partners/old-plan/refresh", data={"csrf_token": token})
    assert failed.status_code == 422 and 'class="flash error"' in failed.text
    actor = f"console:{accounts[Role.OPERATOR]}"
    changes = [e for e in events(platform, "Partner", "old-plan") if e["actor"] == actor]
    assert [e["outcome"] for e in changes] == ["suspended", "active"]
    assert client.get("/console/partners/nobody").status_code == 404


def test_an_operator_edits_a_partners_maintenance_windows_and_contacts_audited(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    client = signed_in(browser, accounts[Role.OPERATOR])
    token = csrf(client, "/console/partners/old-plan")
    target = "/console/partners/old-plan/operations"
    window = '[{"start": "2026-12-01T02:00:00Z", "end": "2026-12-01T04:00:00Z", "reason": "db"}]'
    form = {
        "csrf_token": token,
        "maintenance": window,
        "contact_name_0": "Interop desk",
        "contact_email_0": "interop@old.example",
        "contact_name_1": "On call",
        "contact_phone_1": "+1 555 0100",
    }
    saved = client.post(target, data=form)
    assert saved.status_code == 303, saved.text
    page = text_of(client.get(saved.headers["location"]))
    assert "maintenance windows and contacts were saved" in page
    assert "interop@old.example" in page and "+1 555 0100" in page
    bad = client.post(target, data={**form, "contact_email_0": "", "contact_phone_1": "x"})
    assert bad.status_code == 400 and "a contact has an email address" in bad.text
    not_json = client.post(target, data={**form, "maintenance": "[{"})
    assert not_json.status_code == 400 and "JSON list" in not_json.text
    operations = platform.partners.get(PartnerId("old-plan")).operations  # type: ignore[union-attr]
    assert [c.name for c in operations.contacts] == ["Interop desk", "On call"]
    assert [w.reason for w in operations.maintenance] == ["db"]
    changes = [
        e for e in events(platform, "Partner", "old-plan") if e["action"] == "partner.operations"
    ]
    change = changes[-1]  # the one saved (the refused ones changed nothing)
    assert change["actor"] == f"console:{accounts[Role.OPERATOR]}"
    assert change["detail"]["after"]["contacts"][0]["email"] == "interop@old.example"
    assert not (change["detail"]["before"] or {}).get("maintenance")  # none was set before
    assert change["detail"]["after"]["maintenance"][0]["reason"] == "db"


def test_the_health_page_and_the_dashboard_show_each_partners_state(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    client = signed_in(browser, accounts[Role.OPERATOR])
    page = client.get("/console/health")
    assert page.status_code == 200
    assert 'id="health-old-plan"' in page.text and 'data-state="up"' in page.text
    board = client.get("/console/").text
    assert 'id="now-partners"' in board and "every partner is up" in board


def test_the_dashboard_charts_what_the_database_holds_and_the_auditor_verifies_the_chain(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    before = platform.exchanges.counts_by_state().get("submitted", 0)
    for _ in range(3):
        a_submitted_exchange(platform.units.exchange(), an_exchange_request(), client_id="plan")
    board = signed_in(browser, accounts[Role.VIEWER]).get("/console/")
    assert board.status_code == 200 and board.text.count('<svg class="chart"') == 4
    assert ": submitted " in board.text  # a bar's title: its bucket, series and count
    submitted = f'submitted</span></a></td><td class="num">{before + 3}<'
    assert submitted in board.text
    auditor = signed_in(browser, accounts[Role.AUDITOR])
    if platform.audit_chain.last_checkpoint() is None:
        unsigned = auditor.post("/console/audit/verify", data={"csrf_token": csrf(auditor)})
        assert unsigned.status_code == 400 and "cannot be verified now" in unsigned.text
    audit_checkpointer(platform, every_seconds=0)()  # what the upkeep signs every minute
    verified = auditor.post("/console/audit/verify", data={"csrf_token": csrf(auditor)})
    assert verified.status_code == 303
    page = auditor.get(verified.headers["location"])
    assert 'id="verification-outcome">holds' in page.text
    trail = events(platform, "AuditChain", "chain")
    assert (f"console:{accounts[Role.AUDITOR]}", "holds") in [
        (e["actor"], e["outcome"]) for e in trail
    ]


def test_identifiers_are_masked_until_a_reasoned_grant_of_the_operators_own_and_it_ends(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    exchange_id = a_submitted_exchange(
        platform.units.exchange(), an_exchange_request(), client_id="plan"
    )
    identifier = "OLD-MEMBER-5557321"
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).advance(
            ExchangeId(exchange_id),
            [Move(ExchangeState.VALIDATED, updates={"member_identifier": identifier})],
            Stamp(utcnow(), "test"),
        )
    path = f"/console/exchanges/{exchange_id}"
    # A role that may not see identifiers (a viewer, by default) cannot break the glass.
    viewer = signed_in(browser, accounts[Role.VIEWER])
    form = {"csrf_token": csrf(viewer), "reason": "curious", "minutes": "5", "next": path}
    refused = viewer.post("/console/unmask", data=form)
    assert refused.status_code == 403 and "may not see members' identifiers" in text_of(refused)
    assert identifier not in text_of(viewer.get(path))
    assert [
        (e["action"], e["outcome"]) for e in events(platform, "Operator", accounts[Role.VIEWER])
    ][-1] == ("console.break-glass", "failure")
    operator = accounts[Role.OPERATOR]
    client = signed_in(browser, operator)
    masked_page = text_of(client.get(path))
    assert identifier not in masked_page and "••••7321" in masked_page

    def ask(reason: str, minutes: str) -> httpx.Response:
        form = {"csrf_token": csrf(client), "reason": reason, "minutes": minutes, "next": path}
        return client.post("/console/unmask", data=form)

    for reason, minutes, why in (
        (" ", "15", "say why"),
        ("INC-4411", "600", "1 to 60 minutes"),
        ("INC-4411", "soon", "whole number"),
    ):
        refused = ask(reason, minutes)
        assert refused.status_code == 400 and why in text_of(refused), text_of(refused)[:500]
    assert identifier not in text_of(client.get(path))
    granted = ask("INC-4411 member's own request", "1")
    assert granted.status_code == 303 and granted.headers["location"] == path
    shown = text_of(client.get(path))
    assert identifier in shown and "break-glass grant until" in shown
    actions = [e["action"] for e in events(platform, "Operator", operator)]
    assert actions.count("console.break-glass") == 1 and "console.unmasked-view" in actions
    # The grant is the operator's own: another still sees the identifier masked.
    other = signed_in(browser, accounts[Role.REVIEWER])
    assert identifier not in text_of(other.get(path))
    # And it ends.
    with operators_as(platform, clock=lambda: utcnow() + timedelta(minutes=2)):
        assert identifier not in text_of(client.get(path))


def test_where_the_plan_asks_a_second_operator_a_grant_waits_for_their_approval(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    approval = BreakGlassPolicy(frozenset({Role.OPERATOR}), needs_approval=True)
    with operators_as(platform, break_glass=approval):
        asker_name = accounts[Role.OPERATOR]
        asker = signed_in(browser, asker_name)
        form = {"csrf_token": csrf(asker), "reason": "INC-9", "minutes": "5", "next": "/console/"}
        asked = asker.post("/console/unmask", data=form)
        assert asked.status_code == 303 and "done=requested" in asked.headers["location"]
        assert 'id="unmasked"' not in asker.get("/console/").text  # not in force yet
        page = asker.get("/console/unmask").text
        grant_id = re.findall(r'<td class="mono">([^<]+)</td><td>' + asker_name, page)[0]
        approve = f"/console/unmask/{grant_id}/approve"
        # Not by the one who asked, nor by a role that may not see identifiers.
        own = asker.post(approve, data={"csrf_token": csrf(asker)})
        assert own.status_code == 403 and "second operator" in text_of(own)
        viewer = signed_in(browser, accounts[Role.VIEWER])
        assert viewer.post(approve, data={"csrf_token": csrf(viewer)}).status_code == 403
        second = signed_in(browser, an_account(platform, Role.OPERATOR))
        done = second.post(approve, data={"csrf_token": csrf(second)})
        assert done.status_code == 303, text_of(done)[:500]
        assert 'id="unmasked"' in asker.get("/console/").text
        again = second.post(approve, data={"csrf_token": csrf(second)})
        assert again.status_code == 409
        trail = [(e["action"], e["outcome"]) for e in events(platform, "Operator", asker_name)]
        assert trail.count(("console.break-glass-approval", "failure")) == 2
        assert trail.count(("console.break-glass-approval", "success")) == 1


def test_a_partners_page_lists_its_endpoints_in_the_order_exchanges_call_them(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    endpoints = (
        PartnerEndpoint("http://dr.two/fhir", 5, source="directory sandbox"),
        PartnerEndpoint("http://old.two/fhir", 0, versions=("2.2",)),
        PartnerEndpoint("http://gone.two/fhir", -1, EndpointStatus.OFF, note="retired"),
    )
    two = Partner("two-sites", "Two Sites", "1245319599", "", endpoints=endpoints)
    store_partner(StorePartner(two, "test"), platform.units.partners())
    moved = AuditEvent(
        at=utcnow(),
        actor="directory-bot",
        action="partner.directory-import",
        entity_type="Partner",
        entity_id="two-sites",
        outcome="updated",
        detail={"directory": "sandbox", "changes": ["added http://dr.two/fhir"]},
    )
    unit = platform.units.partners()
    with unit:
        unit.record(moved)
    client = signed_in(browser, accounts[Role.OPERATOR])
    page = client.get("/console/partners/two-sites")
    assert page.status_code == 200
    table = page.text[page.text.index('id="endpoints"') :]
    places = [table.index(url) for url in ("gone.two", "old.two", "dr.two")]
    assert places == sorted(places)  # by priority: the one off first, never called
    assert "retired" in table and "directory sandbox" in table and "2.2" in table
    shown = text_of(page)
    assert "Endpoints last moved" in shown and "by directory-bot (directory sandbox)" in shown
    assert "added http://dr.two/fhir" in shown
