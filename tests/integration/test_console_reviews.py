"""The console's identity review pages in process, on a real database: the queue in its
order, a case side by side, decisions by form taken on the version the page showed (a
stale page is told who decided and when, never overwriting it), bad input as pages, the
roles, and our exchanges waiting on a partner's reviewer. The browser drives the
keyboard (tests/e2e/test_console_reviews_browser.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.consent.model import Requester
from payerbridge.errors import MatchUnderReview
from payerbridge.exchange.model import ExchangeState, Move
from payerbridge.exchange.moves import advance, arrival
from payerbridge.exchange.steps.review import wait_for_reviewer
from payerbridge.identity.service import match_member
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.security.model import Role
from payerbridge.types import ClientId, ExchangeId
from tests.builders import a_coverage, a_patient, a_submitted_exchange, an_exchange_request
from tests.integration.test_console import (
    Accounts,
    TestClient,
    _nothing,
    csrf,
    signed_in,
    text_of,
)
from tests.integration.test_identity_match_writes import command, request_for

S = ExchangeState


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_env: Callable[[], dict[str, str]],
) -> Iterator[Platform]:
    """One instance the module's tests share, with Ana among its members: each test opens
    review cases of its own (her name a letter off, a card nobody holds)."""
    env = module_database_env()
    data = tmp_path_factory.mktemp("console-reviews")
    settings = load_settings(data_dir=data, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    platform = build_platform(settings, partner_transport=httpx.MockTransport(_nothing))
    members = Path(data) / "members.ndjson"
    members.write_bytes(
        b"\n".join(
            orjson.dumps(r)
            for r in (
                a_patient("ana", given="Ana", member_id="M100"),
                a_coverage("cov-ana", patient="ana", member_id="M100", subscriber_id="S100"),
            )
        )
    )
    assert platform.import_members(members).accepted
    store_partner(
        StorePartner(Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    yield platform
    platform.close()


@pytest.fixture(scope="module")
def browser(platform: Platform) -> Callable[[], TestClient]:
    from payerbridge.api.app import create_app

    app = create_app(platform, run_workers=False)
    return lambda: TestClient(app, base_url="http://127.0.0.1:8080", follow_redirects=False)


@pytest.fixture
def accounts(platform: Platform) -> dict[Role, str]:
    return Accounts(platform)


def open_case(platform: Platform) -> str:
    """A review case: Ana's birth date, her name a letter off, a card nobody holds; each
    from a client of its own (one client's second card would be a guess, ADR 0045)."""
    card = f"X{uuid.uuid4().hex[:8]}"
    asked = command(request_for("Anna", "1980-02-03", card), 1000)
    asked = replace(asked, requester=Requester(ClientId(f"plan-{card}"), "1234567893"))
    with platform.transactions.begin() as unit:
        answer = match_member(asked, unit, platform.identity)
    assert isinstance(answer, MatchUnderReview) and answer.review_id, answer
    return answer.review_id


def form_of(page: httpx.Response, action: str) -> dict[str, str]:
    """The hidden fields of the page's form posting to ``action``."""
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"(.*?)</form>', page.text, re.S)
    assert found, page.text[:3000]
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', found.group(1)))


def test_a_reviewer_decides_a_case_by_form_and_is_taken_to_the_next(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    first, second = open_case(platform), open_case(platform)
    client = signed_in(browser, accounts[Role.REVIEWER])
    queue = client.get("/console/reviews", params={"reason": "given_name_unconfirmed"})
    assert queue.status_code == 200, queue.text[:500]
    listed = re.findall(r'data-case="([^"]+)"', queue.text)
    assert listed.index(first) < listed.index(second)  # same risk: the older first
    # Beside the queue's own due time, the rule's: one business day from the request.
    opened = platform.identity.review(first)
    assert opened is not None
    clock = platform.obligations.answer(opened.opened_at, None, opened.opened_at)
    row = re.search(rf'data-case="{first}".*?</tr>', queue.text, re.S)
    assert row and 'class="answer-clock" data-standing="pending"' in row.group(0)
    page = client.get(f"/console/reviews/{first}")
    assert page.status_code == 200
    text = text_of(page)
    assert clock.due_at is not None and clock.due_at.strftime("%Y-%m-%d %H:%M:%S") in text
    assert 'id="answer-clock" data-standing="pending"' in page.text
    # Side by side: the request's first name and Ana's, each comparison with its weight.
    assert "anna" in text and re.search(r">ana<", page.text)
    assert "given name" in text and "proposed" in text and "Review band" in text
    action = f"/console/reviews/{first}/decide"
    hidden = form_of(page, action)
    assert hidden["version"] == "1"

    done = client.post(
        action,
        data={**hidden, "decision": "accept", "member": "ana", "reason": "card number checked"},
    )

    assert done.status_code == 303
    assert done.headers["location"] == f"/console/reviews/next?done=accepted&case={first}"
    following = client.get(done.headers["location"])
    assert following.status_code == 303
    landed = client.get(following.headers["location"])
    assert landed.status_code == 200 and f"case {first[:12]} accepted" in text_of(landed)
    case = platform.identity.review(first)
    assert case is not None and (case.status, case.member_id) == ("accepted", "ana")
    assert case.reviewer == f"console:{accounts[Role.REVIEWER]}"
    trail = platform.audit.for_entity("IdentityReview", first)
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("identity.review.view", case.reviewer),
        ("identity.review", case.reviewer),
    ]


def test_a_stale_page_is_told_who_decided_and_when_and_overwrites_nothing(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    case_id = open_case(platform)
    one = signed_in(browser, accounts[Role.REVIEWER])
    two = signed_in(browser, Accounts(platform)[Role.REVIEWER])
    action = f"/console/reviews/{case_id}/decide"
    left_open = form_of(two.get(f"/console/reviews/{case_id}"), action)  # a page left open
    accepted = {**form_of(one.get(f"/console/reviews/{case_id}"), action), "member": "ana"}
    assert (
        one.post(action, data={**accepted, "decision": "accept", "reason": "ok"}).status_code == 303
    )

    refused = two.post(action, data={**left_open, "decision": "reject", "reason": "not her"})

    assert refused.status_code == 409
    text = text_of(refused)
    who = f"console:{accounts[Role.REVIEWER]}"
    assert f"already decided: accepted by {who} at 20" in text
    assert 'id="decided-by"' in refused.text and who in text  # the newer decision, shown
    assert f'action="{action}"' not in refused.text  # nothing left to decide on
    case = platform.identity.review(case_id)
    assert case is not None and case.status == "accepted" and case.reviewer == who

    # Reopened from the page showing the decision; the stale page still changes nothing.
    reopen = f"/console/reviews/{case_id}/reopen"
    stale_reopen = two.post(reopen, data={**left_open, "reason": "undo"})
    assert stale_reopen.status_code == 412
    shown = form_of(one.get(f"/console/reviews/{case_id}"), reopen)
    assert one.post(reopen, data={**shown, "reason": "wrong person"}).status_code == 303
    again = two.post(action, data={**left_open, "decision": "reject", "reason": "not her"})
    assert again.status_code == 412 and "changed after version 1 was read" in text_of(again)
    assert "not her" in again.text  # what the reviewer typed is kept on the page


def test_bad_input_to_the_review_forms_and_filters_is_a_page_saying_so(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    case_id = open_case(platform)
    client = signed_in(browser, accounts[Role.REVIEWER])
    action = f"/console/reviews/{case_id}/decide"
    hidden = form_of(client.get(f"/console/reviews/{case_id}"), action)
    answers = {
        "no reason": client.post(action, data={**hidden, "decision": "reject", "reason": " "}),
        "no decision": client.post(action, data={**hidden, "reason": "x"}),
        "not a candidate": client.post(
            action, data={**hidden, "decision": "accept", "member": "nobody", "reason": "x"}
        ),
        "no version": client.post(
            action, data={"csrf_token": hidden["csrf_token"], "decision": "reject", "reason": "x"}
        ),
    }
    for why, answer in answers.items():
        assert answer.status_code == 400, (why, answer.text[:300])
        assert 'role="alert"' in answer.text, why
    assert "say why" in text_of(answers["no reason"])
    assert "member must be one of: ana" in text_of(answers["not a candidate"])
    forged = client.post(action, data={"version": "1", "decision": "reject", "reason": "x"})
    assert forged.status_code == 403
    for params in (
        {"status": "maybe"},
        {"reason": "Bad!"},
        {"older": "2y"},
        {"sort": "risk"},
        {"page": "junk"},
    ):
        assert client.get("/console/reviews", params=params).status_code == 400, params
    assert client.get("/console/reviews/no-such-case").status_code == 404
    case = platform.identity.review(case_id)
    assert case is not None and case.status == "open" and case.version == 1


def test_only_reviewers_open_the_queue_and_anyone_sees_the_waits_at_partners(
    platform: Platform, browser: Callable[[], TestClient], accounts: dict[Role, str]
) -> None:
    case_id = open_case(platform)
    waiting = waiting_at_partner(platform)
    for role in sorted(Role, key=lambda r: r is Role.REVIEWER):  # the reviewer decides last
        client = signed_in(browser, accounts[role])
        for page in ("/console/reviews", f"/console/reviews/{case_id}"):
            answer = client.get(page)
            assert answer.status_code == (200 if role is Role.REVIEWER else 403), (role, page)
        posted = client.post(
            f"/console/reviews/{case_id}/decide",
            data={"csrf_token": csrf(client), "version": "1", "decision": "reject", "reason": "x"},
        )
        assert posted.status_code == (303 if role is Role.REVIEWER else 403), role
        if role is not Role.REVIEWER:
            assert "does not open this page" in text_of(posted)
        waits = client.get("/console/reviews/waiting-at-partners")
        assert waits.status_code == 200
        assert waiting in waits.text and "R-77" in waits.text and "old-plan" in waits.text
    reviewed = platform.identity.review(case_id)
    assert reviewed is not None and reviewed.status == "rejected"


def waiting_at_partner(platform: Platform) -> str:
    """An exchange the old payer's reviewer holds (ADR 0013)."""
    ports = platform.units.exchange()
    exchange_id = ExchangeId(
        a_submitted_exchange(ports, an_exchange_request("old-plan"), client_id="plan")
    )
    moves = [Move(S.VALIDATED), Move(S.CONSENT_VERIFIED), arrival(S.ROUTE_SELECTED)]
    advance(ports, exchange_id, moves)
    record = platform.exchanges.current(exchange_id)
    wait_for_reviewer(ports, record, "review case R-77 is open", "key-1")
    return exchange_id
