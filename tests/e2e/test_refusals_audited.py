"""Refused calls in the audit chain (issue 67, ADR 0045), over HTTP on one shared server:
a burst of refused ``$member-match`` calls (422 no match, then 429 over the client's rate),
wrong-card guesses and the card guard's 429, and a ``$bulk-member-match`` guessing a
member's card, each appear as events counted per client, operation, reason and window;
the counts are exact, the events hold no demographics or identifiers, the chain verifies,
and only the first card of a client opens a review case."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from payerbridge.fhir.reasons import REASON_SYSTEM
from payerbridge.security.model import AUDITOR_SCOPE, OPERATOR_SCOPE
from tests.builders import a_member_bundle
from tests.e2e.test_guessing import MEMBER_MATCH, OLD_NPI, _wait_for_manifest, noor, parameters
from tests.servers import REQUESTER_SCOPES, ServerProcess, run_cli

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
WINDOW_SECONDS = 1.0  # short, so that a test sees its windows end
RATE = {"per_minute": 6, "burst": 10}
CARDS = 3  # the card guard's limit
# Noor's demographics with her first name a letter off: with a card she does not hold, a
# reviewer's call (with her exact name the demographics alone match her).
NOUR = ("Nour", "Haddad", "1991-11-30", "female")

Counts = Counter[tuple[str, str, str]]  # (client, operation, reason) -> refused calls


@pytest.fixture(scope="module")
def payer(module_server: Callable[..., ServerProcess], tmp_path_factory: Any) -> ServerProcess:
    members: Path = tmp_path_factory.mktemp("refusals") / "members.ndjson"
    members.write_bytes(noor())
    return module_server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NPI": OLD_NPI,
            "PAYERBRIDGE_RATE_LIMITS": orjson.dumps({f"POST {MEMBER_MATCH}": RATE}).decode(),
            "PAYERBRIDGE_MEMBER_MATCH_MAX_CARDS": str(CARDS),
            "PAYERBRIDGE_AUDIT_REFUSAL_WINDOW_SECONDS": str(WINDOW_SECONDS),
        },
        import_files=[members],
    )


def _client(payer: ServerProcess, client_id: str, npi: str = "1234567893") -> httpx.Client:
    return payer.client_with(payer.register_client(client_id, npi=npi, scope=REQUESTER_SCOPES))


def _reason(answer: httpx.Response) -> str:
    """The reason code a refused call was answered with (the wire's: a wrong-card guess
    is ``no-match`` there)."""
    assert answer.status_code in (422, 429), answer.text
    [code] = [
        c["code"]
        for c in answer.json()["issue"][0]["details"]["coding"]
        if c["system"] == REASON_SYSTEM
    ]
    return str(code)


def _audited(payer: ServerProcess, clients: set[str]) -> tuple[Counts, list[dict[str, Any]]]:
    """The refusals events of ``clients``, summed, once every window they counted in has
    ended and been closed: a refused call after the windows' end closes them (ADR 0045)."""
    time.sleep(WINDOW_SECONDS - time.time() % WINDOW_SECONDS + 0.05)  # the window's end
    with _client(payer, "closer") as closer:
        body = parameters("Nobody", "Known", "1900-01-01", "NONE")
        assert closer.post(MEMBER_MATCH, json=body, headers=FHIR).status_code == 422
    token = payer.register_client("auditor", scope=AUDITOR_SCOPE)
    with payer.client_with(token) as auditor:
        found = auditor.get(
            "/fhir/AuditEvent", params={"subtype": "refusals", "_count": 200}, headers=FHIR
        )
    assert found.status_code == 200, found.text
    events = [entry["resource"] for entry in found.json().get("entry", [])]
    counts: Counts = Counter()
    for event in events:
        [entity] = event["entity"]
        client = entity["what"]["identifier"]["value"]
        detail = orjson.loads(entity["detail"][0]["valueString"])
        assert event["agent"][0]["who"]["identifier"]["value"] == client
        assert event["outcomeDesc"] == "refused" and detail["count"] > 0
        assert detail["window_start"] < detail["window_end"]
        if client in clients:
            counts[(client, detail["operation"], detail["reason"])] += detail["count"]
    return counts, events


def test_a_burst_of_refused_calls_is_audited_as_counted_windows(
    payer: ServerProcess, tmp_path: Path
) -> None:
    """Fourteen people no one holds from one client: ten answered 422, four refused by the
    client's rate (429); the chain holds their counts by reason, exactly, and nothing of
    what was asked; it verifies, and a window's event is proven with the public key."""
    with _client(payer, "guesser") as guesser:
        answers = [
            guesser.post(
                MEMBER_MATCH,
                json=parameters(f"Given{i}", f"Family{i}", f"19{50 + i}-02-0{1 + i % 9}", f"C{i}"),
                headers=FHIR,
            )
            for i in range(14)
        ]
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {422: RATE["burst"], 429: 14 - RATE["burst"]}
    sent = Counter(("guesser", "member-match", _reason(a)) for a in answers)
    counts, events = _audited(payer, {"guesser"})
    assert counts == sent
    assert counts[("guesser", "member-match", "client-rate-limited")] == 4
    windows = [
        (e["entity"][0]["what"]["identifier"]["value"], e["entity"][0]["detail"][0]["valueString"])
        for e in events
    ]
    assert len(windows) == len(set(windows))  # one event per client, reason and window
    text = orjson.dumps(events).decode()
    for asked in ("Given1", "Family1", "1951-02-02", '"C1"', "Haddad", "1991-11-30"):
        assert asked not in text
    verified = payer.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert payer.cli("audit", "checkpoint").returncode == 0
    proved = payer.cli("audit", "prove", "--event", events[0]["id"])
    assert proved.returncode == 0, proved.stderr
    proof = tmp_path / "refusals-proof.json"
    proof.write_text(proved.stdout)
    key = tmp_path / "audit.pub"
    key.write_bytes((payer.data_dir / "audit-signing.key.pub").read_bytes())
    checked = run_cli(["audit", "verify-proof", str(proof), "--public-key", str(key)])
    assert checked.returncode == 0 and "proof holds" in checked.stdout, checked.stdout


def test_wrong_card_guesses_open_no_case_and_are_audited_by_reason(payer: ServerProcess) -> None:
    """One client tries Noor (a letter off) with one made-up card after another: the first goes to a
    reviewer (422 under review), the next are guesses (422 no match, no case), the fourth
    is the card guard's 429; another client's first card still opens a case; a bulk job
    guessing her card is counted the same way. Each refusal is in the chain's counts."""
    with _client(payer, "cards") as cards:
        answers = [
            cards.post(MEMBER_MATCH, json=parameters(*NOUR[:3], f"WRONG{n}"), headers=FHIR)
            for n in range(CARDS + 1)
        ]
    assert [_reason(a) for a in answers] == [
        "match-under-review",
        *["no-match"] * (CARDS - 1),
        "too-many-attempts",
    ]
    with _client(payer, "otherplan", npi="1679576722") as other:
        own = other.post(MEMBER_MATCH, json=parameters(*NOUR[:3], "OTHER1"), headers=FHIR)
    assert _reason(own) == "match-under-review"
    body = {
        "resourceType": "Parameters",
        "parameter": [a_member_bundle(f"sub-{i}", *NOUR, f"GUESS{i:03}") for i in range(5)],
    }
    with _client(payer, "bulkplan") as bulk:
        kicked = bulk.post(
            "/fhir/Group/$bulk-member-match",
            json=body,
            headers={**FHIR, "Prefer": "respond-async"},
        )
        assert kicked.status_code == 202, kicked.text
        manifest = _wait_for_manifest(bulk, kicked.headers["Content-Location"])
    [error_file] = manifest["error"]
    assert error_file["count"] == 5 - CARDS  # the guard's, after the first three cards
    with payer.client_with(payer.register_client("ops", scope=OPERATOR_SCOPE)) as ops:
        reviews = ops.get("/identity/reviews", params={"_count": 500}).json()["reviews"]
    assert len(reviews) == 3  # the first card of each client: cards, otherplan, bulkplan

    counts, events = _audited(payer, {"cards", "otherplan", "bulkplan"})
    assert counts == {
        ("cards", "member-match", "match-under-review"): 1,
        ("cards", "member-match", "card-guard"): CARDS - 1,
        ("cards", "member-match", "too-many-attempts"): 1,
        ("otherplan", "member-match", "match-under-review"): 1,
        ("bulkplan", "bulk-member-match", "match-under-review"): 1,
        ("bulkplan", "bulk-member-match", "card-guard"): CARDS - 1,
        ("bulkplan", "bulk-member-match", "too-many-attempts"): 5 - CARDS,
    }
    text = orjson.dumps(events).decode()
    for asked in ("Haddad", "1991-11-30", "WRONG", "GUESS", "M789"):
        assert asked not in text
    verified = payer.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr
