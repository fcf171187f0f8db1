"""The operator console in a real browser (headless Chromium, Debian's, driven by
Playwright) against a real ``payerbridge serve``: sign in, search an exchange and open
its timeline from the keyboard, replay a dead letter, a page above the role refused, a
form without its CSRF token refused, a wrong password told, an idle session ended; a
partner seen going down and coming back on the health page, and its dead letters
replayed in one action.

Screenshots are kept in ``test-artifacts/screenshots/`` (git-ignored). Without
``/usr/bin/chromium`` the module is skipped, unless ``CI=true``: then it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from payerbridge.security.model import EXCHANGES_SCOPE, OPERATOR_SCOPE
from tests.builders import an_exchange_request
from tests.conftest import BACKEND
from tests.servers import ServerProcess, free_port, new_key, probe

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

# The browser drives the console's pages, keys and scripts: what the pages read and write
# is the store's, whatever the backend, and tests/integration/test_console.py proves it on
# both (sign-in, sessions, CSRF, roles, search, timelines, actions, health). The browser
# runs once, on the SQLite pass (issue 69: about 40 s of the PostgreSQL pass).
pytestmark = pytest.mark.skipif(
    BACKEND == "postgres", reason="the browser's part is the same on both; run on the SQLite pass"
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORDS = {"ops": "operator password, long", "watcher": "viewer password, long"}
STOPPED = {"completed", "partial", "conflict", "failed", "dead_lettered", "blocked"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test; a screenshot of where it ended."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    shoot(opened, f"{request.node.name}-end")
    context.close()


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def add_operator_by_cli(payer: ServerProcess, name: str, role: str) -> str:
    """``payerbridge operators add`` as an operator types it, the password on stdin."""
    done = payer.cli(
        "operators", "add", name, "--role", role, "--password-stdin", input=f"{PASSWORDS[name]}\n"
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_stopped(client: Any, exchange_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exchange: dict[str, Any] = client.get(f"/exchanges/{exchange_id}").json()
        if exchange["state"] in STOPPED:
            return exchange
        time.sleep(0.1)
    raise AssertionError(f"exchange did not stop: {exchange}")


@pytest.fixture(scope="module")
def payer(module_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A new payer whose one partner never answers: its exchanges dead-letter at their
    first failed call. Its operator is added through the CLI, its viewer in process."""
    payer = module_server(
        "console",
        env={"PAYERBRIDGE_RETRY_MAX_ATTEMPTS": "1", "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0"},
    )
    assert "operator ops added with role operator" in add_operator_by_cli(payer, "ops", "operator")
    from payerbridge.security.model import Role
    from payerbridge.security.operator_accounts import AddOperator, add_operator

    with payer.platform() as platform:
        add_operator(
            AddOperator("watcher", Role.VIEWER, PASSWORDS["watcher"], "test"),
            platform.units.operators(),
        )
    token = payer.register_client("admin", scope=OPERATOR_SCOPE)
    with payer.client_with(token) as admin:
        created = admin.post(
            "/partners",
            json={"id": "gone", "name": "Gone Plan", "npi": "1245319599",
                  "base_url": f"http://127.0.0.1:{free_port()}/fhir"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    return payer.authorize("portal", scope=EXCHANGES_SCOPE)


def dead_letter(payer: ServerProcess, member_id: str) -> dict[str, Any]:
    """An exchange for ``member_id`` (our member id on the new card), dead-lettered."""
    request = an_exchange_request("gone")
    request["new_coverage"] = {**request["new_coverage"], "member_id": member_id}
    with payer.client() as client:
        submitted = client.post("/exchanges", json=request, headers=new_key())
        assert submitted.status_code == 202, submitted.text
        exchange = wait_stopped(client, submitted.json()["id"])
    assert exchange["state"] == "dead_lettered", exchange
    return exchange


def sign_in(page: Page, payer: ServerProcess, name: str, password: str | None = None) -> None:
    page.goto(f"{payer.base_url}/console/")
    expect(page).to_have_url(f"{payer.base_url}/console/login?why=signin&next=%2Fconsole%2F")
    page.fill("#name", name)
    page.fill("#password", password or PASSWORDS[name])
    page.press("#password", "Enter")


def test_an_operator_signs_in_searches_an_exchange_and_opens_its_timeline_by_keyboard(
    page: Page, payer: ServerProcess
) -> None:
    exchange = dead_letter(payer, "SEARCH-1")
    sign_in(page, payer, "ops")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".operator")).to_contain_text("ops")
    expect(page.locator("svg.chart")).to_have_count(4)
    shoot(page, "dashboard")
    page.click("nav >> text=Exchanges")
    expect(page.locator("h1")).to_have_text("Exchanges")
    # The keys are a deferred script's, there once DOMContentLoaded has fired: a key
    # pressed before is lost.
    page.wait_for_load_state("domcontentloaded")
    page.keyboard.press("/")  # focuses the search
    page.keyboard.type("SEARCH-1")
    page.keyboard.press("Enter")
    expect(page.locator("#search-total")).to_have_text("1 exchange")
    page.wait_for_load_state("domcontentloaded")
    shoot(page, "exchange-search")
    page.keyboard.press("j")  # the first row
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{payer.base_url}/console/exchanges/{exchange['id']}")
    expect(page.locator("#exchange-state")).to_have_text("dead_lettered")
    timeline = page.locator("#timeline")
    expect(timeline.locator("li[data-kind=intake]").first).to_be_visible()
    expect(timeline).to_contain_text("exchange.transition")
    expect(timeline).to_contain_text("exchange.attempt")
    runbook = f"{payer.base_url}/runbooks/attempts-exhausted"
    expect(page.locator("#reason-link")).to_have_attribute("href", runbook)
    expect(page.locator("#dead-letter")).to_contain_text("member-match")
    calls = page.locator("#partner-calls tbody tr")
    expect(calls).to_have_count(1)  # one attempt: the partner never answered
    expect(calls.first).to_contain_text("unavailable")
    expect(calls.first).to_contain_text("member-match")
    shoot(page, "exchange-timeline")
    opened = page.request.get(runbook)
    assert opened.status == 200 and "attempts-exhausted" in opened.text()


def test_an_operator_replays_a_dead_letter_and_its_timeline_shows_the_replay(
    page: Page, payer: ServerProcess
) -> None:
    exchange = dead_letter(payer, "REPLAY-1")
    sign_in(page, payer, "ops")
    page.goto(f"{payer.base_url}/console/waiting?view=dead_lettered")
    row = page.locator(f"tr[data-href='/console/exchanges/{exchange['id']}']")
    expect(row).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())  # "Replay exchange …?"
    row.locator("button", has_text="Replay").click()
    expect(page.locator(".flash.notice")).to_contain_text(f"exchange {exchange['id']} was replayed")
    shoot(page, "replayed")
    with payer.client() as client:
        replayed = wait_stopped(client, exchange["id"])
    assert replayed["replays"] == 1
    assert ("validated", "console:ops") in [(s["to"], s["actor"]) for s in replayed["history"]]
    page.goto(f"{payer.base_url}/console/exchanges/{exchange['id']}")
    expect(page.locator("#timeline")).to_contain_text("console:ops")
    expect(page.locator("#timeline")).to_contain_text("replay")


def test_a_viewer_is_refused_an_operator_page_and_does_not_see_it_in_the_navigation(
    page: Page, payer: ServerProcess
) -> None:
    sign_in(page, payer, "watcher")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("header nav")).not_to_contain_text("Partners")
    answer = page.goto(f"{payer.base_url}/console/partners")
    assert answer is not None and answer.status == 403
    expect(page.locator(".problem-text")).to_contain_text(
        "your role (viewer) does not open this page"
    )
    shoot(page, "refused")


def test_a_form_without_the_sessions_csrf_token_is_refused(
    page: Page, payer: ServerProcess
) -> None:
    exchange = dead_letter(payer, "CSRF-1")
    sign_in(page, payer, "ops")
    page.goto(f"{payer.base_url}/console/exchanges/{exchange['id']}")
    page.evaluate("document.querySelector('#replay-form input[name=csrf_token]').remove()")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#replay")
    expect(page.locator(".problem-text")).to_contain_text("security token is missing")
    with payer.client() as client:
        assert client.get(f"/exchanges/{exchange['id']}").json()["replays"] == 0


def test_a_wrong_password_is_told_on_the_sign_in_page(page: Page, payer: ServerProcess) -> None:
    sign_in(page, payer, "ops", "not the right password")
    expect(page.locator(".flash.error")).to_have_text(
        "the name or the password is wrong, or the account is disabled"
    )
    expect(page.locator("#name")).to_have_value("ops")
    shoot(page, "wrong-password")


def test_an_idle_session_sends_the_operator_back_to_sign_in(
    page: Page, server: Callable[..., ServerProcess]
) -> None:
    short = server("short-sessions", env={"PAYERBRIDGE_CONSOLE_IDLE_SECONDS": "2"})
    assert "added" in add_operator_by_cli(short, "ops", "operator")
    sign_in(page, short, "ops")
    expect(page.locator("h1")).to_have_text("Dashboard")
    time.sleep(2.2)
    page.reload()
    expect(page.locator(".flash.notice")).to_have_text(
        "your session expired after a while without use; sign in again"
    )
    expect(page).to_have_url(f"{short.base_url}/console/login?why=idle&next=%2Fconsole%2F")


class FaultProxy:
    """``tests/faultproxy.py`` on one port in front of ``upstream``: stopped, the partner
    at its address is down (connections refused); started again, it is back."""

    def __init__(self, upstream: str, log: Path) -> None:
        self.port, self.upstream, self.log = free_port(), upstream, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faultproxy", "--port", str(self.port)]
            + ["--upstream", self.upstream, "--log", str(self.log)],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if probe(f"http://127.0.0.1:{self.port}/healthz", timeout=2).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the fault proxy did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def test_an_operator_sees_a_partner_go_down_and_come_back_and_replays_its_dead_letters(
    page: Page, payer: ServerProcess, tmp_path: Path
) -> None:
    """The partner is the payer itself behind the fault proxy: up, it answers (its
    ``$member-match`` refuses us, which is an answer); stopped, nothing answers."""
    proxy = FaultProxy(payer.base_url, tmp_path / "calls.jsonl")
    proxy.start()
    try:
        with payer.client_with(payer.register_client("health", scope=OPERATOR_SCOPE)) as admin:
            created = admin.post(
                "/partners",
                json={"id": "flaky", "name": "Flaky Plan", "npi": "1234567802",
                      "base_url": proxy.base_url},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            proxy.stop()  # the partner goes down
            letters = [_dead_letter_with(payer, "flaky", f"FLAKY-{n}") for n in range(2)]
            health = admin.get("/partners/flaky/health").json()
            assert health["state"] == "down", health
            assert health["unanswered"] == 2 and health["last_success_at"] is None

        sign_in(page, payer, "ops")
        expect(page.locator("#now-partners")).to_contain_text("flaky")
        page.click("nav >> text=Partner health")
        row = page.locator("#health-flaky")
        expect(row.locator(".health-state")).to_have_text("down")
        expect(row.locator(".error-mix")).not_to_contain_text("none")
        expect(row.locator(".dead-letters")).to_have_text("2")
        shoot(page, "partner-down")

        proxy.start()  # the partner is back on the same address
        page.once("dialog", lambda dialog: dialog.accept())  # "Replay every dead letter …?"
        row.locator("button", has_text="Replay all").click()
        expect(page.locator(".flash.notice")).to_contain_text("2 dead letter(s) of flaky replayed")
        with payer.client() as client:
            replayed = [wait_stopped(client, e["id"]) for e in letters]
        assert all(e["replays"] == 1 for e in replayed), replayed
        page.reload()
        expect(row.locator(".health-state")).not_to_have_text("down")
        expect(row.locator(".last-success")).not_to_contain_text("none")
        shoot(page, "partner-back")
    finally:
        proxy.stop()
    with payer.client() as client:  # a requester is not an operator
        assert client.get("/partners/flaky/health").status_code == 403
        assert client.post("/partners/flaky/dead-letters/$replay").status_code == 403
    with payer.client_with(payer.register_client("health", scope=OPERATOR_SCOPE)) as admin:
        again = admin.post("/partners/flaky/dead-letters/$replay", headers=new_key())
        assert again.status_code == 200 and again.json()["replayed"] == [], again.text
    shown = payer.cli("partners", "health", "flaky")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] in ("up", "degraded")
    replayed_by_cli = payer.cli("partners", "replay-dead-letters", "flaky", "--key", "k1")
    assert replayed_by_cli.returncode == 0, replayed_by_cli.stderr
    assert "0 dead letter(s) of flaky replayed" in replayed_by_cli.stdout
    with payer.platform() as platform:
        events = platform.oversight.last_event("Partner", "flaky", "partner.dead-letters-replayed")
    assert events is not None and events["actor"] == "console:ops"
    assert events["detail"]["count"] == 2


def _dead_letter_with(payer: ServerProcess, partner: str, member_id: str) -> dict[str, Any]:
    request = an_exchange_request(partner)
    request["new_coverage"] = {**request["new_coverage"], "member_id": member_id}
    with payer.client() as client:
        submitted = client.post("/exchanges", json=request, headers=new_key())
        assert submitted.status_code == 202, submitted.text
        exchange = wait_stopped(client, submitted.json()["id"])
    assert exchange["state"] == "dead_lettered", exchange
    return exchange
