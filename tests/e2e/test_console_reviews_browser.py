"""The identity review queue in a real browser (headless Chromium, Debian's, driven by
Playwright) against a real ``payerbridge serve`` whose ``$member-match`` opened the
cases: a reviewer decides one from the keyboard alone, a second decision of a case is
refused with who decided it and when, and a viewer cannot open the queue.

Screenshots go to ``test-artifacts/screenshots/`` as the console's own browser tests'
(tests/e2e/test_console_browser.py, whose browser and page fixtures these share)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e import test_console_browser as console_browser
from tests.e2e.test_member_match import (
    HOUSEHOLD,
    NEW_NPI,
    OLD_NPI,
    issue,
    match,
    parameters,
)
from tests.servers import REQUESTER_SCOPES, ServerProcess

# The console's browser fixtures (one headless Chromium for the module, a fresh context
# and an end-of-test screenshot per test); skipped as theirs without Chromium.
browser = console_browser.browser
page = console_browser.page
shoot = console_browser.shoot
PASSWORD = "reviewer password, long enough"
# As the console's (tests/integration/test_console_reviews.py proves the review pages on
# both backends): the browser runs once, on the SQLite pass.
pytestmark = console_browser.pytestmark


@pytest.fixture(scope="module")
def payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """An old payer with a household among its members and three console accounts."""
    data = tmp_path_factory.mktemp("review-browser") / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in HOUSEHOLD))
    payer = module_server("reviews", env={"PAYERBRIDGE_ORG_NPI": OLD_NPI}, import_files=[data])
    from payerbridge.security.model import Role
    from payerbridge.security.operator_accounts import AddOperator, add_operator

    with payer.platform() as platform:
        for name, role in (("rev1", Role.REVIEWER), ("rev2", Role.REVIEWER), ("eye", Role.VIEWER)):
            add_operator(AddOperator(name, role, PASSWORD, "test"), platform.units.operators())
    yield payer


def open_case(payer: ServerProcess) -> str:
    """A case opened by a new requester's ``$member-match`` for Noor, her name a letter
    off and no card to confirm it; the queue holds no other open case."""
    token = payer.register_client(
        f"plan-{uuid.uuid4().hex[:8]}", npi=NEW_NPI, scope=REQUESTER_SCOPES
    )
    with payer.client_with(token) as client:
        refused = issue(match(client, parameters("Nour", "1991-11-30")), 422, "business-rule")
    with payer.platform() as platform:
        from payerbridge.identity.model import ReviewQuery

        (case,) = platform.identity.reviews(ReviewQuery(status="open"))
    assert case.id in refused["details"]["text"]
    return case.id


def sign_in(page: Page, payer: ServerProcess, name: str, target: str) -> None:
    page.goto(f"{payer.base_url}{target}")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page.locator(".operator")).to_contain_text(name)
    # Its deferred script (the keys) runs before DOMContentLoaded: a key pressed earlier
    # is lost, and the reason typed after it would be read as keys (an "a" accepts).
    page.wait_for_load_state("domcontentloaded")


def test_a_reviewer_decides_a_case_from_the_keyboard(page: Page, payer: ServerProcess) -> None:
    case_id = open_case(payer)
    sign_in(page, payer, "rev1", "/console/reviews")
    row = page.locator(f"tr[data-case='{case_id}']")
    expect(row).to_be_visible()
    shoot(page, "review-queue")
    page.keyboard.press("j")  # the first row: the only open case
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{payer.base_url}/console/reviews/{case_id}")
    proposed = page.locator("section.candidate.selected")
    expect(proposed).to_have_attribute("data-member", "other")
    expect(proposed.locator("tr", has_text="given name")).to_contain_text("nour")
    expect(proposed.locator("tr", has_text="given name")).to_contain_text("noor")
    shoot(page, "review-case")

    page.keyboard.press("a")  # accept the chosen candidate: the cursor goes to the reason
    expect(page.locator("#reason")).to_be_focused()
    page.keyboard.type("spelling confirmed with the member by phone")
    page.keyboard.press("Enter")

    # Decided, and on to the next case: none is open, so the queue says so.
    expect(page.locator(".flash.notice")).to_contain_text(f"case {case_id[:12]} accepted")
    expect(page).to_have_url(f"{payer.base_url}/console/reviews?done=accepted&case={case_id}")
    shoot(page, "review-decided")
    with payer.platform() as platform:
        case = platform.identity.review(case_id)
    assert case is not None and (case.status, case.member_id) == ("accepted", "other")
    assert case.reviewer == "console:rev1"
    assert case.reason == "spelling confirmed with the member by phone"


def test_a_case_decided_meanwhile_is_not_decided_again(
    browser: Browser, page: Page, payer: ServerProcess
) -> None:
    case_id = open_case(payer)
    url = f"/console/reviews/{case_id}"
    sign_in(page, payer, "rev2", url)  # a page left open before the other decides
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    try:
        sign_in(other, payer, "rev1", url)
        other.keyboard.press("r")
        other.keyboard.type("not the same person")
        other.keyboard.press("Enter")
        expect(other.locator(".flash.notice")).to_contain_text("rejected")
    finally:
        other.context.close()

    page.keyboard.press("a")
    page.keyboard.type("she is the member")
    page.keyboard.press("Enter")

    expect(page.locator(".flash.error")).to_contain_text(
        f"review case {case_id} was already decided: rejected by console:rev1 at"
    )
    expect(page.locator("#decided-by")).to_have_text("console:rev1")  # the newer decision
    expect(page.locator("#decision")).to_have_count(0)
    shoot(page, "review-decided-meanwhile")
    with payer.platform() as platform:
        case = platform.identity.review(case_id)
    assert case is not None and case.status == "rejected" and case.reviewer == "console:rev1"


def test_a_viewer_cannot_open_the_review_queue(page: Page, payer: ServerProcess) -> None:
    sign_in(page, payer, "eye", "/console/")
    expect(page.locator("header nav")).not_to_contain_text("Identity reviews")
    answer = page.goto(f"{payer.base_url}/console/reviews")
    assert answer is not None and answer.status == 403
    expect(page.locator("main")).to_contain_text("your role (viewer) does not open this page")
    shoot(page, "review-queue-refused")
