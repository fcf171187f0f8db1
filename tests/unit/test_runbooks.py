"""Every reason code the platform emits has its runbook, and every answer that carries a
reason code links it.

The codes are what the rooms declare (``api/runbooks.py`` gathers them) and what every
error class of the tree says it is; the pages are ``docs/runbooks/<code>.md``.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

import payerbridge
from payerbridge import errors
from payerbridge.api.errors import install_error_handlers
from payerbridge.api.routers import runbooks as runbooks_router
from payerbridge.api.runbooks import (
    ALERT_PAGE,
    RunbookShelf,
    default_runbooks_dir,
    runbook_codes,
)
from payerbridge.exchange.received.normalize import UNRECEIVABLE, UNRESOLVED_REFERENCE
from payerbridge.fhir import codes
from payerbridge.fhir.completeness import GAP_CODES
from payerbridge.fhir.outcome import outcome_for
from payerbridge.fhir.reasons import (
    REASON_SYSTEM,
    RUNBOOK_EXTENSION,
    link_runbooks_to,
    runbook_url,
)
from payerbridge.identity.matching.rules import RuleBook

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
SECTIONS = ("## What it means", "## How to confirm", "## What to do", "## When to escalate")
_NOT_IMPORTABLE = {"payerbridge.store.migrations.env"}


def _pages() -> dict[str, str]:
    """The reason codes' pages (the alerts' are the alert rules' to name)."""
    return {
        page.stem: page.read_text(encoding="utf-8")
        for page in RUNBOOKS.glob("*.md")
        if page.stem != "README" and not ALERT_PAGE.match(page.stem)
    }


def test_every_code_has_a_page_and_every_page_a_code() -> None:
    pages = _pages()
    missing = sorted(runbook_codes() - set(pages))
    assert not missing, f"reason codes without a runbook in docs/runbooks/: {missing}"
    stale = sorted(set(pages) - runbook_codes())
    assert not stale, f"runbooks of codes payerbridge no longer emits: {stale}"


def test_each_page_says_what_it_means_how_to_confirm_what_to_do_and_when_to_escalate() -> None:
    for code, text in _pages().items():
        assert text.startswith(f"# `{code}`: "), code
        positions = [text.find(section) for section in SECTIONS]
        assert -1 not in positions and positions == sorted(positions), code
        bodies = re.split(r"^## .*$", text, flags=re.MULTILINE)[1:]
        assert all(body.strip() for body in bodies), f"{code}: an empty section"


def test_the_index_links_every_page() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)/]+)\.md\)", index))
    assert runbook_codes() <= linked
    assert all((RUNBOOKS / f"{page}.md").is_file() for page in linked)


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_class_has_a_reason_code_with_a_runbook() -> None:
    for info in pkgutil.walk_packages(payerbridge.__path__, "payerbridge."):
        if info.name not in _NOT_IMPORTABLE:
            importlib.import_module(info.name)
    ours = [
        cls
        for cls in _subclasses(errors.PayerBridgeError)
        if cls.__module__.startswith("payerbridge.")
    ]
    assert errors.OAuthError in ours
    without = sorted(cls.__name__ for cls in ours if cls.reason_code not in runbook_codes())
    assert not without, f"error classes whose reason code has no runbook: {without}"
    # Each raised class says what it is (a family, never raised itself, may share its
    # first child's; a subclass that adds nothing to the wire may share its parent's).
    shared = {errors.MatchError, errors.DisclosureDenied}
    vague = sorted(
        cls.__name__ for cls in ours if cls not in shared and "reason_code" not in vars(cls)
    )
    assert not vague, f"error classes that inherit their reason code: {vague}"


def test_the_summary_pages_name_every_guard_and_every_gap_code() -> None:
    guards = (RUNBOOKS / "guard_violation.md").read_text(encoding="utf-8")
    assert [g for g in RuleBook().guard_names() if f"`{g}`" not in guards] == []
    incomplete = (RUNBOOKS / "incomplete.md").read_text(encoding="utf-8")
    gaps = {*GAP_CODES, UNRECEIVABLE, UNRESOLVED_REFERENCE}
    assert [g for g in sorted(gaps) if f"`{g}`" not in incomplete] == []


@pytest.fixture
def linked_to_a_wiki() -> Iterator[str]:
    link_runbooks_to("https://wiki.plan.example/payerbridge/{code}")
    yield "https://wiki.plan.example/payerbridge/"
    link_runbooks_to("/runbooks/{code}")


def test_an_outcome_with_a_reason_code_names_it_and_links_its_runbook(
    linked_to_a_wiki: str,
) -> None:
    _, body = outcome_for(errors.NoMatch("no member matched", decision_id="d-1"))
    (issue,) = body["issue"]
    assert issue["code"] == "not-found"  # HRex's issue code, unchanged
    assert issue["details"]["coding"] == [{"system": REASON_SYSTEM, "code": "no-match"}]
    assert issue["extension"] == [
        {"url": RUNBOOK_EXTENSION, "valueUrl": f"{linked_to_a_wiki}no-match"}
    ]


def test_the_codings_partners_read_stay_first(linked_to_a_wiki: str) -> None:
    _, denied = outcome_for(errors.DisclosureDenied("revoked", reason="revoked"))
    assert denied["issue"][0]["details"]["coding"] == [
        {"system": codes.CONSENT_DENY_REASON, "code": "revoked"},
        {"system": REASON_SYSTEM, "code": "revoked"},
    ]
    _, review = outcome_for(errors.MatchUnderReview("a person looks"))
    assert review["issue"][0]["details"]["coding"][0] == {
        "system": codes.MEMBER_MATCH_OUTCOME,
        "code": "review",
    }
    assert review["issue"][0]["extension"][0]["valueUrl"].endswith("/match-under-review")


def test_a_runbook_address_needs_a_place_for_the_code() -> None:
    with pytest.raises(ValueError, match="code"):
        link_runbooks_to("https://wiki.plan.example/payerbridge/")
    assert runbook_url("no-match") == "/runbooks/no-match"


class _Client:
    """Requests to an application in process (httpx's ASGI transport; starlette's
    TestClient wants a package we do not install)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str) -> httpx.Response:
        return self.request("POST", path)


def _app(directory: Path) -> _Client:
    """The runbooks router and the error handlers, in process: what serves the pages and
    what links them (no database: the router reads only its settings)."""
    app = FastAPI()
    app.state.platform = SimpleNamespace(settings=SimpleNamespace(runbooks_dir=directory))
    install_error_handlers(app)
    app.include_router(runbooks_router.router)

    @app.post("/token")
    def token() -> None:
        raise errors.OAuthError(errors.OAuthErrorCode.INVALID_CLIENT, "who?", status=401)

    @app.get("/member")
    def member() -> None:
        raise errors.TooManyAttempts("too many cards", retry_after_seconds=30)

    return _Client(app)


def test_the_server_serves_each_page_to_anyone_and_refuses_other_names() -> None:
    client = _app(default_runbooks_dir())
    page = client.get("/runbooks/partner-review")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    assert page.text == (RUNBOOKS / "partner-review.md").read_text(encoding="utf-8")
    assert "[`no-match`](no-match.md)" in client.get("/runbooks").text
    for name in ("no-such-code", "..%2Fconfig", "README.md"):
        refused = client.get(f"/runbooks/{name}")
        assert refused.status_code == 404, name
        assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "not-found"


def test_pages_not_installed_are_a_404_that_names_no_path(tmp_path: Path) -> None:
    refused = _app(tmp_path / "nowhere").get("/runbooks/no-match")
    assert refused.status_code == 404
    assert str(tmp_path) not in refused.text and "runbooks_dir" in refused.text
    with pytest.raises(errors.NotFound):
        RunbookShelf(tmp_path).page("no-match")


def test_each_answer_with_a_reason_code_links_a_page_the_server_serves() -> None:
    client = _app(default_runbooks_dir())
    refused = client.post("/token")
    assert refused.status_code == 401
    assert refused.json()["error_uri"] == "/runbooks/invalid_client"  # RFC 6749 5.2
    throttled = client.get("/member").json()["issue"][0]
    assert throttled["details"]["coding"] == [
        {"system": REASON_SYSTEM, "code": "too-many-attempts"}
    ]
    for link in (refused.json()["error_uri"], throttled["extension"][0]["valueUrl"]):
        assert client.get(link).status_code == 200, link
    unknown = client.get("/no-such-endpoint").json()["issue"][0]
    assert unknown["extension"][0]["valueUrl"] == "/runbooks/not-found"


def test_an_alerts_page_is_served_by_its_name_alone(tmp_path: Path) -> None:
    (tmp_path / "alert-dead-letters-growing.md").write_text("# Alert\n", encoding="utf-8")
    client = _app(tmp_path)
    assert client.get("/runbooks/alert-dead-letters-growing").text == "# Alert\n"
    for name in ("alert-", "alert-Dead", "alert-x.md", "alert--x"):
        assert client.get(f"/runbooks/{name}").status_code == 404, name
