"""$member-match through the identity engine, end to end against a real server process:
demographics-only requests, family traps over HTTP, the review queue, the identity graph
and the brute-force guard (HRex mm-4, mm-7..10)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from payerbridge.fhir.reasons import REASON_SYSTEM, RUNBOOK_EXTENSION
from payerbridge.security.model import OPERATOR_SCOPE
from tests.builders import a_coverage, a_patient, member_match_parameters
from tests.fhir_profiles import load, violations
from tests.servers import REQUESTER_SCOPES, ServerProcess

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
MB = {"coding": [{"system": V2, "code": "MB"}]}
MATCH_OUTCOME = "urn:payerbridge:member-match-outcome"

HOME = {"line": ["12 Oak Street"], "postalCode": "62701"}


def member(
    pid: str, given: str, birth: str, gender: str, member_id: str, subscriber: str = "S100"
) -> list[dict[str, Any]]:
    patient = a_patient(
        pid, family="Garcia", given=given, birth_date=birth, gender=gender, member_id=member_id
    )
    patient["address"] = [{"use": "home", **HOME}]
    coverage = a_coverage(f"{pid}-cov", patient=pid, member_id=member_id, subscriber_id=subscriber)
    coverage["subscriber"] = {"reference": "Patient/head"}
    return [patient, coverage]


# A household on one card: the subscriber, and twin daughters whose names are a letter apart.
HOUSEHOLD = [
    *member("head", "Luis", "1970-03-14", "male", "S100"),
    *member("twin-a", "Mia", "2010-06-15", "female", "K201"),
    *member("twin-b", "Mila", "2010-06-15", "female", "K202"),
    *member("other", "Noor", "1991-11-30", "female", "Z900", subscriber="Z900"),
]
# A member on a card of her own, whom only the identity graph's test asks for (the module's
# tests share a server): her graph holds that test's links only.
LINKED = member("ines", "Ines", "1985-09-09", "female", "L300", subscriber="L300")


def parameters(
    given: str,
    birth: str,
    *,
    gender: str = "female",
    member_id: str | None = None,
    subscriber_id: str | None = None,
    link_member_id: str | None = "NEW-77",
) -> dict[str, Any]:
    """A new payer's request: MemberPatient, CoverageToMatch with what the card shows, and
    CoverageToLink with the new payer's own member id."""
    patient = {
        "resourceType": "Patient",
        "id": "1",
        "name": [{"family": "Garcia", "given": [given]}],
        "birthDate": birth,
        "gender": gender,
        "address": [{"use": "home", **HOME}],
    }
    to_match: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": "9876B1",
        "status": "active",
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"identifier": {"value": OLD_NPI}}],
    }
    if member_id:
        to_match["identifier"] = [{"type": MB, "value": member_id}]
    if subscriber_id:
        to_match["subscriberId"] = subscriber_id
    entries = [
        {"name": "MemberPatient", "resource": patient},
        {"name": "CoverageToMatch", "resource": to_match},
    ]
    if link_member_id:
        entries.append(
            {
                "name": "CoverageToLink",
                "resource": {
                    "resourceType": "Coverage",
                    "id": "cov-new",
                    "status": "active",
                    "identifier": [
                        {"type": MB, "system": "http://new.example/mb", "value": link_member_id}
                    ],
                    "beneficiary": {"reference": "Patient/1"},
                    "payor": [{"identifier": {"value": NEW_NPI}}],
                },
            }
        )
    return {"resourceType": "Parameters", "parameter": entries}


@pytest.fixture(scope="module")
def shared_old_payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """One old payer the module's tests share, each asking as a client of its own."""
    data = tmp_path_factory.mktemp("member-match") / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in [*HOUSEHOLD, *LINKED]))
    return module_server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NPI": OLD_NPI,
            "PAYERBRIDGE_MEMBER_MATCH_MAX_CARDS": "3",
        },
        import_files=[data],
    )


def own_client_id(request: pytest.FixtureRequest) -> str:
    """The id of the test's own requesting client on the shared server."""
    return f"newplan-{request.node.name}"


@pytest.fixture
def old_payer(shared_old_payer: ServerProcess, request: pytest.FixtureRequest) -> ServerProcess:
    """The shared old payer, whose ``client()`` is the test's own client (its cards
    tried, its review cases and its audit events are its own)."""
    token = shared_old_payer.register_client(
        own_client_id(request), npi=NEW_NPI, scope=REQUESTER_SCOPES
    )
    return dataclasses.replace(shared_old_payer, credential=token)


def operator(payer: ServerProcess) -> httpx.Client:
    """A client with the operator scope only (reviews, the identity graph)."""
    return payer.client_with(
        payer.register_client(f"ops-{uuid.uuid4().hex[:8]}", scope=OPERATOR_SCOPE)
    )


def match(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/fhir/Patient/$member-match", json=body, headers=FHIR)


def matched_member(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    values = {p["name"]: p for p in response.json()["parameter"]}
    return values["MemberId"]["valueReference"]["reference"].removeprefix("Patient/")


def issue(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    first: dict[str, Any] = response.json()["issue"][0]
    assert first["code"] == code, first
    return first


def test_demographics_only_and_card_requests_find_the_member(old_payer: ServerProcess) -> None:
    with old_payer.client() as client:
        # No member id, no subscriber id: the engine matches on demographics (us-core-15
        # is not enforced by default).
        assert matched_member(match(client, parameters("Noor", "1991-11-30"))) == "other"
        assert (
            matched_member(match(client, parameters("Mia", "2010-06-15", member_id="K201")))
            == "twin-a"
        )
        # A married name does not stop a card-backed match.
        married = parameters("Mila", "2010-06-15", member_id="K202")
        married["parameter"][0]["resource"]["name"][0]["family"] = "Okafor"
        assert matched_member(match(client, married)) == "twin-b"


def test_requests_at_once_are_each_answered_and_audited(
    old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    """Requests over several connections at once: each gets its own member, each answer
    is audited (as this test's client's), and the audit chain verifies."""
    asked = {
        "other": parameters("Noor", "1991-11-30", member_id="Z900"),
        "twin-a": parameters("Mia", "2010-06-15", member_id="K201"),
        "twin-b": parameters("Mila", "2010-06-15", member_id="K202"),
        "head": parameters("Luis", "1970-03-14", gender="male", member_id="S100"),
    }
    expected = [member_id for member_id in asked for _ in range(6)]
    with old_payer.client() as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: matched_member(match(client, asked[m])), expected))
    assert answers == expected
    with old_payer.platform() as platform:
        for member_id in asked:
            events = platform.audit.for_entity("Patient", member_id)
            matches = [
                e
                for e in events
                if (e["action"], e["outcome"]) == ("member-match", "match")
                and e["actor"] == own_client_id(request)
            ]
            assert len(matches) == 6, member_id
    verified = old_payer.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr


def test_a_match_is_logged_on_the_requests_one_line(old_payer: ServerProcess) -> None:
    start = len(old_payer.log())  # what this test's request logs, not the others'
    with old_payer.client() as client:
        response = match(client, parameters("Noor", "1991-11-30", member_id="Z900"))
    assert matched_member(response) == "other"
    request_id = response.headers["x-request-id"]
    log = old_payer.logged(start, request_id, '"msg":"request"')
    lines = [orjson.loads(line) for line in log.splitlines() if request_id in line]
    [line] = lines
    assert line["msg"] == "request" and line["status"] == 200
    assert line["events"] == ["member-match decided", "member-match answered"]
    assert line["outcome"] == "match" and line["decision_id"]
    assert "Z900" not in log and "Noor" not in log


def test_twins_are_never_swapped(old_payer: ServerProcess) -> None:
    with old_payer.client() as client:
        # The subscriber id only: both twins are on the card; Mia's name is a letter from
        # Mila's, so the answer is never Mila.
        answer = match(client, parameters("Mia", "2010-06-15", subscriber_id="S100"))
        if answer.status_code == 200:
            assert matched_member(answer) == "twin-a"
        else:
            assert answer.status_code == 422
        # The family card (the subscriber's own number) with a twin's name is not the
        # subscriber, and a twin who never enrolled ("Mira") is nobody's match.
        for given in ("Mia", "Mira"):
            response = match(client, parameters(given, "2010-06-15", member_id="S100"))
            if response.status_code == 200:
                assert matched_member(response) == "twin-a" and given == "Mia"


def own_reviews(ops: httpx.Client, request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The open review cases of the test's own requests (the server is shared)."""
    cases = ops.get("/identity/reviews", params={"_count": 500}).json()["reviews"]
    return [case for case in cases if case["requester"] == own_client_id(request)]


def test_a_review_case_is_opened_decided_and_answered(
    old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    # A typo in the first name and no card: a reviewer must confirm it is Noor.
    typo = parameters("Nour", "1991-11-30", link_member_id="NEW-88")
    with old_payer.client() as client, operator(old_payer) as ops:
        first = issue(match(client, typo), 422, "business-rule")
        assert first["details"]["coding"] == [
            {"system": MATCH_OUTCOME, "code": "review"},
            {"system": REASON_SYSTEM, "code": "match-under-review"},
        ]
        # Its runbook, linked by the address the server is configured with, served by it.
        (link,) = first["extension"]
        assert link["url"] == RUNBOOK_EXTENSION
        assert link["valueUrl"] == f"{old_payer.base_url}/runbooks/match-under-review"
        runbook = httpx.get(link["valueUrl"], timeout=10, verify=old_payer.verify)
        assert runbook.status_code == 200 and "## What to do" in runbook.text
        cases = own_reviews(ops, request)
        assert len(cases) == 1 and cases[0]["candidates"] == ["other"]
        # Why at a glance: a first name a typo away, and no identifier to confirm it.
        assert cases[0]["opened_because"] == "given_name_unconfirmed"
        case_id = cases[0]["id"]
        assert case_id in first["details"]["text"]
        # Asked again while open: the same case, no second one.
        again = issue(match(client, typo), 422, "business-rule")
        assert case_id in again["details"]["text"]
        assert len(own_reviews(ops, request)) == 1

        shown = ops.get(f"/identity/reviews/{case_id}")
        case = shown.json()
        assert shown.headers["ETag"] == 'W/"1"' and case["version"] == 1
        evidence = case["evidence"]
        assert evidence["outcome"] == "review" and evidence["candidates"][0]["member"] == "other"
        levels = {c["comparison"]: c["level"] for c in evidence["candidates"][0]["comparisons"]}
        assert levels["given_name"] != "exact" and levels["birth_date"] == "exact"
        # Side by side for the reviewer: the request's value and the member's, per field.
        candidate, *also_considered = case["comparison"]["candidates"]
        assert candidate["member"] == "other" and candidate["proposed"] is True
        assert not any(c["proposed"] for c in also_considered)
        fields = {f["comparison"]: f for f in candidate["fields"]}
        assert (fields["given_name"]["request"], fields["given_name"]["candidate"]) == (
            "nour",
            "noor",
        )
        assert fields["birth_date"]["request"] == fields["birth_date"]["candidate"] == "1991-11-30"
        assert candidate["band"] in ("review_band", "auto_band")
        assert case["comparison"]["bands"]["policy"] == "single_exchange"
        # The list shows no demographics; the showing is audited, the log holds none.
        assert "nour" not in str(cases).lower() and "1991" not in str(cases)
        assert "nour" not in old_payer.log().lower()

        # Bad decisions are refused with nothing changed.
        wrong = ops.post(
            f"/identity/reviews/{case_id}/$decide",
            json={
                "decision": "accept",
                "member": "head",
                "reason": "x",
                "reviewer": "r.lee",
                "version": 1,
            },
        )
        assert wrong.status_code == 400, wrong.text
        assert client.get("/identity/reviews").status_code in (401, 403)  # not for clients

        accepted = ops.post(
            f"/identity/reviews/{case_id}/$decide",
            json={
                "decision": "accept",
                "member": "other",
                "reason": "spelling confirmed with the member by phone",
                "reviewer": "r.lee",
            },
            headers={"If-Match": shown.headers["ETag"]},
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["status"] == "accepted" and accepted.headers["ETag"] == 'W/"2"'
        twice = ops.post(
            f"/identity/reviews/{case_id}/$decide",
            json={"decision": "reject", "reason": "x", "reviewer": "k.wu", "version": 2},
        )
        refused = issue(twice, 409, "conflict")
        assert ":r.lee at 20" in refused["details"]["text"]  # who decided, and when

        # The requester's next identical request gets the member.
        assert matched_member(match(client, typo)) == "other"
        links = ops.get("/identity/members/other/links").json()["links"]
        kinds = {link["kind"] for link in links}
        assert {"reviewed-request", "umb", "linked-coverage"} <= kinds
        assert ops.get(f"/identity/decisions/{case['decision']}").json()["outcome"] == "review"
    with old_payer.platform() as platform:
        events = platform.audit.for_entity("IdentityReview", case_id)
        assert [(e["action"], e["outcome"]) for e in events] == [
            ("identity.review.view", "success"),
            ("identity.review", "accepted"),
        ]
        assert events[1]["actor"].endswith(":r.lee")


def test_a_rejected_case_answers_no_match(
    old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    typo = parameters("Nour", "1991-11-30")
    with old_payer.client() as client, operator(old_payer) as ops:
        issue(match(client, typo), 422, "business-rule")
        case_id = own_reviews(ops, request)[0]["id"]
        rejected = ops.post(
            f"/identity/reviews/{case_id}/$decide",
            json={
                "decision": "reject",
                "reason": "a different person",
                "reviewer": "r.lee",
                "version": 1,
            },
        )
        assert rejected.json()["status"] == "rejected"
        issue(match(client, typo), 422, "not-found")


def open_case(payer: ServerProcess, ops: httpx.Client, client_id: str) -> dict[str, Any]:
    """A review case opened by ``client_id``'s request for Noor, her name a letter off."""
    token = payer.register_client(client_id, npi=NEW_NPI, scope=REQUESTER_SCOPES)
    with payer.client_with(token) as client:
        issue(match(client, parameters("Nour", "1991-11-30")), 422, "business-rule")
    cases = ops.get("/identity/reviews", params={"_count": 500}).json()["reviews"]
    (case,) = [case for case in cases if case["requester"] == client_id]
    return case


def decide(ops: httpx.Client, case_id: str, **sent: Any) -> httpx.Response:
    headers = {"If-Match": sent.pop("if_match")} if "if_match" in sent else {}
    body = {"decision": "reject", "reason": "a different person", "reviewer": "r.lee", **sent}
    return ops.post(f"/identity/reviews/{case_id}/$decide", json=body, headers=headers)


def test_a_stale_page_cannot_overwrite_a_newer_decision(
    shared_old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    with operator(shared_old_payer) as ops:
        case_id = open_case(shared_old_payer, ops, own_client_id(request))["id"]
        stale = ops.get(f"/identity/reviews/{case_id}").headers["ETag"]  # a page left open
        # Without the version it was made on, a change is not taken (RFC 6585).
        issue(decide(ops, case_id), 428, "required")
        first = decide(ops, case_id, if_match=stale, decision="accept", member="other")
        assert first.status_code == 200, first.text
        # The decision is undone on the version that shows it, never on the stale page's.
        reopen = {"reason": "the member called back", "reviewer": "lead"}
        url = f"/identity/reviews/{case_id}/$reopen"
        issue(ops.post(url, json=reopen, headers={"If-Match": stale}), 412, "conflict")
        reopened = ops.post(url, json=reopen, headers={"If-Match": first.headers["ETag"]})
        assert reopened.status_code == 200, reopened.text
        assert reopened.json()["status"] == "open" and reopened.headers["ETag"] == 'W/"3"'
        # The page read before all of it would overwrite the case: refused, saying so.
        refused = issue(decide(ops, case_id, if_match=stale), 412, "conflict")
        assert "changed after version 1 was read" in refused["details"]["text"]
        latest = decide(ops, case_id, if_match=reopened.headers["ETag"])
        assert latest.status_code == 200 and latest.json()["status"] == "rejected"
    with shared_old_payer.platform() as platform:
        events = platform.audit.for_entity("IdentityReview", case_id)
        assert [e["action"] for e in events if e["action"] != "identity.review.view"] == [
            "identity.review",
            "identity.review.reopen",
            "identity.review",
        ]


def test_of_reviewers_deciding_a_case_at_once_exactly_one_wins(
    shared_old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    with operator(shared_old_payer) as ops:
        case_id = open_case(shared_old_payer, ops, own_client_id(request))["id"]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: decide(ops, case_id, version=1, reviewer=f"reviewer-{n}"), range(8)
                )
            )
        assert sorted(a.status_code for a in answers) == [200] + [409] * 7, [
            a.text for a in answers
        ]
        (winner,) = [a.json()["reviewer"] for a in answers if a.status_code == 200]
        for lost in (a for a in answers if a.status_code == 409):
            assert f"rejected by {winner} at" in lost.json()["issue"][0]["details"]["text"]
    with shared_old_payer.platform() as platform:
        decided = platform.audit.for_entity("IdentityReview", case_id)
        assert [e["actor"] for e in decided if e["action"] == "identity.review"] == [winner]


def test_bad_review_input_gets_a_clear_outcome(
    shared_old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    with operator(shared_old_payer) as ops:
        case_id = open_case(shared_old_payer, ops, own_client_id(request))["id"]
        url = f"/identity/reviews/{case_id}/$decide"
        assert (
            "reason"
            in issue(
                ops.post(url, json={"decision": "reject", "reviewer": "r", "version": 1}),
                400,
                "required",
            )["details"]["text"]
        )
        issue(decide(ops, case_id, version=1, reason="   "), 400, "invalid")
        unknown = issue(
            decide(ops, case_id, version=1, decision="accept", member="head"), 400, "value"
        )
        assert unknown["expression"] == ["member"] and "other" in unknown["details"]["text"]
        issue(decide(ops, case_id, version=1, decision="maybe"), 400, "invalid")
        issue(decide(ops, case_id, version=1, colour="red"), 400, "invalid")
        issue(decide(ops, case_id, version=0), 400, "invalid")
        issue(decide(ops, case_id, if_match="*"), 400, "invalid")
        issue(decide(ops, case_id, if_match='W/"1"', version=2), 400, "invalid")
        malformed = ops.post(
            url, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        issue(malformed, 400, "structure")
        issue(decide(ops, "no-such-case", version=1), 404, "not-found")
        for bad in (
            {"page": "nonsense"},
            {"older-than": "3 weeks"},
            {"sort": "risk"},
            {"_count": 0},
        ):
            issue(ops.get("/identity/reviews", params=bad), 400, "invalid")
        # Nothing was decided.
        assert ops.get(f"/identity/reviews/{case_id}").json()["status"] == "open"


def test_the_queue_is_oldest_and_riskiest_first_paged_and_filtered(
    shared_old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    mine = {f"{own_client_id(request)}-{n}" for n in range(3)}
    with operator(shared_old_payer) as ops:
        for client_id in sorted(mine):
            open_case(shared_old_payer, ops, client_id)
        # One case a page, following the next links: every open case once, in order.
        seen: list[dict[str, Any]] = []
        url: str | None = "/identity/reviews?_count=1"
        while url is not None:
            page = ops.get(url).json()
            seen.extend(page["reviews"])
            url = page["next"]
        assert len({case["id"] for case in seen}) == len(seen)
        assert [(c["due_at"], c["id"]) for c in seen] == sorted(
            (c["due_at"], c["id"]) for c in seen
        )
        assert mine <= {case["requester"] for case in seen}
        for case in seen:
            assert 0 <= case["risk"] <= 1 and case["due_at"] > case["opened_at"]
            assert case["overdue"] is False and case["age_seconds"] >= 0
        # Filters: a reason the case was opened for, the policy, its age.
        reason = "given_name_unconfirmed"
        by_reason = ops.get("/identity/reviews", params={"reason": reason, "_count": 500})
        assert mine <= {c["requester"] for c in by_reason.json()["reviews"]}
        assert all(reason in c["opened_because"] for c in by_reason.json()["reviews"])
        other = ops.get("/identity/reviews", params={"reason": "ssn_mismatch", "_count": 500})
        assert not mine & {c["requester"] for c in other.json()["reviews"]}
        bulk = ops.get("/identity/reviews", params={"policy": "bulk", "_count": 500}).json()
        assert not mine & {c["requester"] for c in bulk["reviews"]}
        old = ops.get("/identity/reviews", params={"older-than": "1d"}).json()
        assert old["reviews"] == [] and old["next"] is None


def test_coverage_to_link_and_umb_are_in_the_identity_graph(old_payer: ServerProcess) -> None:
    with old_payer.client() as client, operator(old_payer) as ops:
        response = match(
            client, parameters("Ines", "1985-09-09", member_id="L300", link_member_id="NEW-123")
        )
        assert matched_member(response) == "ines"
        umb = response.json()["parameter"][0]["valueIdentifier"]["value"]
        # Queryable both ways: member -> identifiers, identifier -> member.
        links = ops.get("/identity/members/ines/links").json()["links"]
        linked = [link for link in links if link["kind"] == "linked-coverage"]
        assert [(link["system"], link["value"]) for link in linked] == [
            ("http://new.example/mb", "NEW-123")
        ]
        assert linked[0]["assigner"] == f"http://hl7.org/fhir/sid/us-npi|{NEW_NPI}"
        found = ops.get("/identity/links", params={"identifier": "http://new.example/mb|NEW-123"})
        assert [link["member"] for link in found.json()["links"]] == ["ines"]
        by_umb = ops.get("/identity/links", params={"identifier": umb}).json()["links"]
        assert [(link["member"], link["kind"]) for link in by_umb] == [("ines", "umb")]


def test_brute_force_on_card_data_is_throttled(old_payer: ServerProcess) -> None:
    start = len(old_payer.log())  # what this test's requests log, not the others'
    with old_payer.client() as client:
        for card in ("A1", "A2", "A3", "A1", "A2", "A1"):  # a card tried again is one card
            assert match(client, parameters("Noor", "1991-11-30", member_id=card)).status_code in (
                200,
                422,
            )
        refused = match(client, parameters("Noor", "1991-11-30", member_id="A4"))
        issue(refused, 429, "throttled")
        # The true wait: until the oldest card leaves the window (3600 s), not a constant.
        assert 3500 < int(refused.headers["retry-after"]) <= 3600
        # Other demographics from the same client are not affected.
        assert (
            matched_member(match(client, parameters("Mia", "2010-06-15", member_id="K201")))
            == "twin-a"
        )
    log = old_payer.logged(start, '"status":429')
    assert "Noor" not in log and "1991-11-30" not in log
    # The request log names the operation (the route's template), as for every other route.
    assert '"method":"POST","path":"/fhir/Patient/$member-match","status":429' in log


def test_under_an_idempotency_key_an_answer_is_kept_and_a_throttled_call_is_not(
    old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    """A no-match (422) and a match are each answered once and replayed as they were,
    with no side effect of the retry; a call refused for too many cards (429) keeps no
    answer: the key is free again and the same call is decided again."""

    def keyed(client: httpx.Client, body: dict[str, Any], key: str) -> httpx.Response:
        headers = {**FHIR, "Idempotency-Key": key}
        return client.post("/fhir/Patient/$member-match", json=body, headers=headers)

    key = uuid.uuid4().hex
    with old_payer.client() as client:
        nobody = parameters("Zed", "1999-09-09", member_id="Q1")
        first = keyed(client, nobody, f"{key}-none")
        issue(first, 422, "not-found")
        assert keyed(client, nobody, f"{key}-none").content == first.content
        noor = parameters("Noor", "1991-11-30", member_id="Z900")
        hit = keyed(client, noor, f"{key}-hit")
        assert matched_member(hit) == "other"
        assert keyed(client, noor, f"{key}-hit").content == hit.content
        for card in ("C1", "C2", "C3"):  # three cards for Luis, none his
            body = parameters("Luis", "1970-03-14", gender="male", member_id=card)
            assert match(client, body).status_code in (200, 422)
        guessed = parameters("Luis", "1970-03-14", gender="male", member_id="C4")
        for _ in range(2):  # not in flight, not replayed: refused again
            issue(keyed(client, guessed, f"{key}-guessed"), 429, "throttled")
    with old_payer.platform() as platform:
        answers = [
            e
            for member_id in ("-", "other", "head")
            for e in platform.audit.for_entity("Patient", member_id)
            if e["action"] == "member-match" and e["actor"] == own_client_id(request)
        ]
    keys = sorted((e.get("detail") or {}).get("idempotency_key") or "" for e in answers)
    assert keys == ["", "", "", f"{key}-hit", f"{key}-none"]


def test_duplicates_are_merged_and_split_with_lineage(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Noor's record was loaded twice under two card numbers: until an operator merges the
    duplicate, a demographics-only request fits two members."""
    data = tmp_path / "with-duplicate.ndjson"
    duplicate = member("noor-2", "Noor", "1991-11-30", "female", "Z901", subscriber="Z901")
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in [*HOUSEHOLD, *duplicate]))
    payer = server(
        "dup",
        env={"PAYERBRIDGE_ORG_NPI": OLD_NPI},
        import_files=[data],
    ).authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    noor = parameters("Noor", "1991-11-30")
    with payer.client() as client, operator(payer) as ops:
        issue(match(client, noor), 422, "multiple-matches")
        merged = ops.post(
            "/identity/members/noor-2/$merge", json={"into": "other", "reviewer": "r.lee"}
        )
        assert merged.status_code == 200, merged.text
        assert merged.json()["kind"] == "merged-into" and merged.json()["value"] == "other"
        assert matched_member(match(client, noor)) == "other"
        # Refused with a reason: merging again, into a merged member, into itself, unknown.
        assert (
            ops.post(
                "/identity/members/noor-2/$merge", json={"into": "other", "reviewer": "r"}
            ).status_code
            == 409
        )
        assert (
            ops.post(
                "/identity/members/head/$merge", json={"into": "noor-2", "reviewer": "r"}
            ).status_code
            == 400
        )
        assert (
            ops.post(
                "/identity/members/head/$merge", json={"into": "head", "reviewer": "r"}
            ).status_code
            == 400
        )
        assert (
            ops.post(
                "/identity/members/head/$merge", json={"into": "nobody", "reviewer": "r"}
            ).status_code
            == 404
        )
        # The survivor's graph shows the merge; splitting ends it and keeps the lineage.
        lineage = ops.get("/identity/members/other/links").json()["links"]
        assert [(x["member"], x["valid_to"]) for x in lineage if x["kind"] == "merged-into"] == [
            ("noor-2", None)
        ]
        split = ops.post("/identity/members/noor-2/$split", json={"reviewer": "r.lee"})
        assert split.json() == {"member": "noor-2", "split_from": "other"}
        ended = ops.get("/identity/members/noor-2/links").json()["links"]
        assert [x["valid_to"] is not None for x in ended if x["kind"] == "merged-into"] == [True]
        issue(match(client, noor), 422, "multiple-matches")
    with payer.platform() as platform:
        events = platform.audit.for_entity("Patient", "noor-2")
        assert [e["action"] for e in events] == ["identity.merge", "identity.split"]


def test_each_caller_is_answered_in_the_shape_of_the_hrex_version_it_names(
    old_payer: ServerProcess,
) -> None:
    hrex = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition"
    with old_payer.client() as client:
        for version in ("1.0.0", "1.1.0", "1.2.0", None):
            body = parameters("Noor", "1991-11-30")
            if version == "1.0.0":  # HRex 1.0.0 requires the member's Consent
                refused = match(
                    client,
                    {
                        **body,
                        "meta": {"profile": [f"{hrex}/hrex-parameters-member-match-in|1.0.0"]},
                    },
                )
                assert (
                    "'Consent' is required by HRex 1.0.0"
                    in issue(refused, 400, "required")["details"]["text"]
                )
                shaped = member_match_parameters(our_npi=NEW_NPI, partner_npi=OLD_NPI, hrex="1.0.0")
                body["parameter"].append(shaped["parameter"][3])
            if version is not None:
                body["meta"] = {"profile": [f"{hrex}/hrex-parameters-member-match-in|{version}"]}
            answer = match(client, body)
            assert answer.status_code == 200, answer.text
            names = [p["name"] for p in answer.json()["parameter"]]
            typed = {
                c["code"]
                for c in answer.json()["parameter"][0]["valueIdentifier"]["type"]["coding"]
            }
            if version == "1.0.0":  # one parameter, typed MB (closed slicing in 1.0.0)
                assert (names, typed) == (["MemberIdentifier"], {"MB"})
            elif version is None:  # typed for every version, MemberId as configured
                assert (names, typed) == (["MemberIdentifier", "MemberId"], {"UMB", "MB"})
            else:
                assert (names, typed) == (["MemberIdentifier", "MemberId"], {"UMB"})
            for checked in [version] if version else ["1.1.0", "1.2.0"]:
                profile = load(
                    f"hrex-{checked}", "StructureDefinition-hrex-parameters-member-match-out"
                )
                assert violations(answer.json(), profile, f"hrex-{checked}") == []


def test_a_case_is_listed_shown_decided_and_reopened_from_the_command_line(
    shared_old_payer: ServerProcess, request: pytest.FixtureRequest
) -> None:
    payer = shared_old_payer
    with operator(payer) as ops:
        case_id = open_case(payer, ops, own_client_id(request))["id"]
    listed = payer.cli("identity", "reviews", "list", "--json", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    [case] = [c for c in orjson.loads(listed.stdout)["reviews"] if c["id"] == case_id]
    assert case["status"] == "open" and case["version"] == 1
    assert "nour" not in listed.stdout.lower()  # the list shows no demographics
    table = payer.cli("identity", "reviews", "list")
    assert table.returncode == 0 and case_id in table.stdout

    shown = payer.cli("identity", "reviews", "show", case_id)
    assert shown.returncode == 0, shown.stderr
    [candidate, *_] = orjson.loads(shown.stdout)["comparison"]["candidates"]
    fields = {f["comparison"]: f for f in candidate["fields"]}
    assert (fields["given_name"]["request"], fields["given_name"]["candidate"]) == ("nour", "noor")

    decide = ("identity", "reviews", "decide", case_id, "--reason", "not her")
    neither = payer.cli(*decide, "--version", "1")
    assert neither.returncode == 2 and "--accept MEMBER or --reject" in neither.stderr
    stale = payer.cli(*decide, "--version", "7", "--reject")
    assert stale.returncode == 4, stale.stderr
    rejected = payer.cli(*decide, "--version", "1", "--reject")
    assert rejected.returncode == 0, rejected.stderr
    assert "rejected by cli:" in rejected.stdout and "(version 2)" in rejected.stdout
    twice = payer.cli(*decide, "--version", "2", "--accept", "other")
    assert twice.returncode == 4 and "rejected by cli:" in twice.stderr

    reopened = payer.cli(
        "identity", "reviews", "reopen", case_id, "--version", "2", "--reason", "x"
    )
    assert reopened.returncode == 0, reopened.stderr
    with operator(payer) as ops:
        now = ops.get(f"/identity/reviews/{case_id}").json()
    assert (now["status"], now["version"]) == ("open", 3)
    with payer.platform() as platform:
        trail = platform.audit.for_entity("IdentityReview", case_id)
    actions = [(e["action"], e["actor"].split(":")[0]) for e in trail]
    assert ("identity.review.view", "cli") in actions and ("identity.review", "cli") in actions
