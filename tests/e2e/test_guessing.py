"""Guessing costs (issue 48): the rate of ``$member-match`` is one client's, counted by
every server process on the database; the card guard (HRex mm-7) counts each
``$bulk-member-match`` member with the client's ``$member-match`` attempts, and a card
past the guard opens no review case."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.security.model import OPERATOR_SCOPE
from tests.builders import a_coverage, a_member_bundle, a_patient
from tests.servers import REQUESTER_SCOPES, ServerProcess, start_server

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
MEMBER_MATCH = "/fhir/Patient/$member-match"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
NOOR = ("Noor", "Haddad", "1991-11-30", "female")


def noor() -> bytes:
    """The old payer's one member, as an import file's lines."""
    patient = a_patient(
        "noor",
        given="Noor",
        family="Haddad",
        birth_date="1991-11-30",
        gender="female",
        member_id="M789",
    )
    coverage = a_coverage("noor-cov", patient="noor", member_id="M789", subscriber_id="M789")
    return b"\n".join(orjson.dumps(r) for r in (patient, coverage))


@pytest.fixture
def members(tmp_path: Path) -> Path:
    path = tmp_path / "members.ndjson"
    path.write_bytes(noor())
    return path


def parameters(given: str, family: str, birth: str, card: str) -> dict[str, Any]:
    patient = {
        "resourceType": "Patient",
        "id": "1",
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": "female",
    }
    to_match = {
        "resourceType": "Coverage",
        "id": "c1",
        "status": "active",
        "identifier": [{"type": {"coding": [{"system": V2, "code": "MB"}]}, "value": card}],
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"identifier": {"value": OLD_NPI}}],
    }
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "MemberPatient", "resource": patient},
            {"name": "CoverageToMatch", "resource": to_match},
        ],
    }


def test_varied_requests_from_one_client_are_throttled_by_every_process(
    server: Callable[..., ServerProcess], members: Path
) -> None:
    """Each request a different person and card (the mm-7 guard never fires), sent to two
    server processes on one database in turn: the client's five a minute are five in all,
    not five each; then both answer 429 ``throttled`` with the true wait."""
    rates = {f"POST {MEMBER_MATCH}": {"per_minute": 6, "burst": 5}}
    first = server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NPI": OLD_NPI,
            "PAYERBRIDGE_RATE_LIMITS": orjson.dumps(rates).decode(),
        },
        import_files=[members],
    ).authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    second = start_server(first.data_dir, env=first.env, import_files=[], log_name="second.log")
    second.credential = first.credential
    try:
        answers = []
        with first.client() as one, second.client() as other:
            for i in range(12):
                client = (one, other)[i % 2]
                body = parameters(f"Given{i}", f"Family{i}", f"19{50 + i}-01-0{1 + i % 9}", f"C{i}")
                answers.append(client.post(MEMBER_MATCH, json=body, headers=FHIR))
    finally:
        second.stop()
    statuses = [answer.status_code for answer in answers]
    assert statuses[:5] == [422] * 5  # no such members: answered
    assert statuses[5:] == [429] * 7, statuses  # from both processes
    for refused in answers[5:]:
        assert refused.json()["issue"][0]["code"] == "throttled"
        assert 8 <= int(refused.headers["retry-after"]) <= 10  # one request every 10 s
        assert "6 requests a minute" in refused.json()["issue"][0]["details"]["text"]
    # Another client has its own budget.
    token = first.register_client("otherplan", npi="1679576722", scope=REQUESTER_SCOPES)
    with first.client_with(token) as client:
        body = parameters("Given99", "Family99", "1999-01-01", "C99")
        assert client.post(MEMBER_MATCH, json=body, headers=FHIR).status_code == 422


def test_twenty_cards_for_one_member_in_a_bulk_job_trip_the_card_guard(
    server: Callable[..., ServerProcess], members: Path
) -> None:
    """One job tries Noor's demographics with twenty made-up cards: five (the guard's
    limit) are decided, fifteen are not matched and named in the job's error file, at most
    five review cases open, and the client's next $member-match with another card is
    refused: the job's attempts counted."""
    payer = server(
        "old",
        env={"PAYERBRIDGE_ORG_NPI": OLD_NPI, "PAYERBRIDGE_MEMBER_MATCH_MAX_CARDS": "5"},
        import_files=[members],
    ).authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    body = {
        "resourceType": "Parameters",
        "parameter": [a_member_bundle(f"sub-{i}", *NOOR, f"GUESS{i:03}") for i in range(20)],
    }
    with payer.client() as client:
        kicked = client.post(
            "/fhir/Group/$bulk-member-match",
            json=body,
            headers={**FHIR, "Prefer": "respond-async"},
        )
        assert kicked.status_code == 202, kicked.text
        manifest = _wait_for_manifest(client, kicked.headers["Content-Location"])
        [error_file] = manifest["error"]
        assert error_file["type"] == "OperationOutcome" and error_file["count"] == 15
        lines = _ndjson(client, error_file["url"])
        assert [line["issue"][0]["code"] for line in lines] == ["throttled"] * 15
        assert [line["issue"][0]["expression"] for line in lines] == [
            [f"Parameters.parameter[{i}]"] for i in range(5, 20)
        ]
        assert "HRex mm-7" in lines[0]["issue"][0]["diagnostics"]
        [groups] = [f for f in manifest["output"] if f["type"] == "Group"]
        by_code = {g["code"]["coding"][0]["code"]: g for g in _ndjson(client, groups["url"])}
        assert len(by_code["nomatch"]["member"]) >= 15  # the throttled are not matched
        refused = client.post(
            MEMBER_MATCH, json=parameters("Noor", "Haddad", "1991-11-30", "X1"), headers=FHIR
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["issue"][0]["code"] == "throttled"
    with payer.client_with(payer.register_client("ops", scope=OPERATOR_SCOPE)) as ops:
        reviews = ops.get("/identity/reviews").json()["reviews"]
    assert len(reviews) <= 5
    log = payer.log()
    assert "Haddad" not in log and "GUESS0" not in log and "1991-11-30" not in log


def _wait_for_manifest(client: Any, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        answer = client.get(status_url, headers={"Accept": "application/json"})
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        time.sleep(0.1)  # polling the job, as its client would
    raise AssertionError("the job did not complete in time")


def _ndjson(client: Any, url: str) -> list[dict[str, Any]]:
    answer = client.get(url, headers={"Accept": "application/fhir+ndjson"})
    assert answer.status_code == 200, answer.text
    return [orjson.loads(line) for line in answer.content.splitlines() if line]
