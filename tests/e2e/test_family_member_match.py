"""Family traps through ``$member-match`` over HTTP (issue 49): identifiers a household
shares (an SSN, the surname, the home) never outvote the person's own evidence, and an
SSN each side holds as its own that disagrees blocks an auto-match. One server for the
module; each test is one family, asserting the answer and the stored evidence that
decided it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from payerbridge.security.model import OPERATOR_SCOPE
from tests.servers import REQUESTER_SCOPES, ServerProcess

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
MB = {"coding": [{"system": V2, "code": "MB"}]}
US_SSN = "http://hl7.org/fhir/sid/us-ssn"
MATCH_OUTCOME = "urn:payerbridge:member-match-outcome"
HOME = {"use": "home", "line": ["40 Elm Road"], "postalCode": "30301"}
PHONE = {"system": "phone", "value": "404-555-0199", "use": "home"}
SISTER_SSN, MOTHER_SSN, STRANGER_SSN = "321-54-9876", "555-12-3456", "468-22-1357"
OKAFOR_HOME = {"use": "home", "line": ["7 Kingfisher Court"], "postalCode": "77002"}
AMARA_SSN = "402-33-5150"


def member(
    pid: str,
    given: list[str],
    family: str,
    birth: str,
    member_id: str,
    ssn: str,
    *,
    subscriber: str = "mother",
    subscriber_id: str = "G100",
    address: dict[str, Any] = HOME,
) -> list[dict[str, Any]]:
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {"type": MB, "system": "http://old.example/mb", "value": member_id},
            {"system": US_SSN, "value": ssn},
        ],
        "name": [{"family": family, "given": given}],
        "birthDate": birth,
        "gender": "male" if given[0] == "Alejandro" else "female",
        "address": [address],
        "telecom": [PHONE],
    }
    coverage = {
        "resourceType": "Coverage",
        "id": f"{pid}-cov",
        "status": "active",
        "identifier": [{"type": MB, "system": "http://old.example/mb", "value": member_id}],
        "subscriberId": subscriber_id,
        "subscriber": {"reference": f"Patient/{subscriber}"},
        "relationship": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                    "code": "self" if pid == subscriber else "child",
                }
            ]
        },
        "beneficiary": {"reference": f"Patient/{pid}"},
        "payor": [{"reference": "Organization/org1"}],
    }
    return [patient, coverage]


# A family (each holds their own SSN) and a woman with a rare name in another town.
MEMBERS = [
    *member("mother", ["Maria"], "Garcia", "1980-07-02", "G100", MOTHER_SSN),
    *member("father", ["Alejandro"], "Garcia", "1966-07-02", "G101", "555-12-9999"),
    *member("sister", ["Amanda"], "Garcia", "2008-03-14", "G102", SISTER_SSN),
    # A mother and her five-year-old daughter; the baby born this year was never enrolled.
    *member(
        "grace",
        ["Grace"],
        "Okafor",
        "1992-04-10",
        "O100",
        "402-33-5101",
        subscriber="grace",
        subscriber_id="O100",
        address=OKAFOR_HOME,
    ),
    *member(
        "amara",
        ["Amara"],
        "Okafor",
        "2021-06-10",
        "O101",
        AMARA_SSN,
        subscriber="grace",
        subscriber_id="O100",
        address=OKAFOR_HOME,
    ),
    *member(
        "zephyrine",
        ["Zephyrine", "Odalys"],
        "Marchetti",
        "1990-04-03",
        "Z900",
        STRANGER_SSN,
        subscriber="zephyrine",
        subscriber_id="Z900",
        address={"use": "home", "line": ["9 Birch Lane"], "postalCode": "60601"},
    ),
]


def request(
    given: list[str],
    birth: str,
    ssn: str,
    *,
    family: str = "Garcia",
    address: dict[str, Any] = HOME,
    phone: bool = True,
) -> dict[str, Any]:
    """A new payer's request with no card: demographics and the SSN its form collected."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "1",
        "identifier": [{"system": US_SSN, "value": ssn}],
        "name": [{"family": family, "given": given}],
        "birthDate": birth,
        "gender": "female",
        "address": [address],
    }
    if phone:
        patient["telecom"] = [PHONE]
    to_match = {
        "resourceType": "Coverage",
        "id": "9876B1",
        "status": "active",
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"identifier": {"value": OLD_NPI}}],
    }
    link = {
        "resourceType": "Coverage",
        "id": "cov-new",
        "status": "active",
        "identifier": [{"type": MB, "system": "http://new.example/mb", "value": "NEW-1"}],
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"identifier": {"value": NEW_NPI}}],
    }
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "MemberPatient", "resource": patient},
            {"name": "CoverageToMatch", "resource": to_match},
            {"name": "CoverageToLink", "resource": link},
        ],
    }


@pytest.fixture(scope="module")
def old_payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    data = Path(tmp_path_factory.mktemp("family")) / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in MEMBERS))
    env = {"PAYERBRIDGE_ORG_NPI": OLD_NPI, "PAYERBRIDGE_MEMBER_MATCH_MAX_CARDS": "100"}
    payer = module_server("old", env=env, import_files=[data])
    return payer.authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)


@pytest.fixture(scope="module")
def ops(old_payer: ServerProcess) -> Iterator[httpx.Client]:
    with old_payer.client_with(old_payer.register_client("ops", scope=OPERATOR_SCOPE)) as client:
        yield client


def ask(payer: ServerProcess, body: dict[str, Any]) -> httpx.Response:
    with payer.client() as client:
        return client.post("/fhir/Patient/$member-match", json=body, headers=FHIR)


def outcome_code(response: httpx.Response) -> str:
    """The answer: the matched member's id, ``review`` (a 422 coded so), or ``not-matched``
    (a 422 without a match: none, or several)."""
    if response.status_code == 200:
        values = {p["name"]: p for p in response.json()["parameter"]}
        return str(values["MemberId"]["valueReference"]["reference"])
    assert response.status_code == 422, response.text
    codings = response.json()["issue"][0]["details"].get("coding", [])
    if {"system": MATCH_OUTCOME, "code": "review"} in codings:
        return "review"
    return "not-matched"


def evidence_of(payer: ServerProcess, ops: httpx.Client, response: httpx.Response) -> Any:
    """The stored evidence of the decision that answered ``response``: the decision's id is
    on its audit event, written with it before the answer, under the request's id."""
    request_id = response.headers["x-request-id"]
    with payer.platform() as platform:
        [decision_id] = [
            event.entity_id
            for event in platform.audit_chain.events()
            if event.action == "identity.decision" and event.request_id == request_id
        ]
    decision = ops.get(f"/identity/decisions/{decision_id}")
    assert decision.status_code == 200, decision.text
    return decision.json()["evidence"]


def held_back(evidence: dict[str, Any], member: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in evidence["candidates"] if c["member"] == member)
    found["levels"] = {c["comparison"]: c["level"] for c in found["comparisons"]}
    return found


def test_a_never_enrolled_sister_carrying_the_members_ssn_is_not_the_member(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """Issue 49's done criterion: a sister who never enrolled, with the member's SSN,
    surname and home, another given name (a misspelled Alexandra against Amanda) and a
    birth date five years apart: no match, and the evidence names the shared SSN and the
    conflicting given name and birth date."""
    response = ask(old_payer, request(["Alexnadra"], "2013-09-21", SISTER_SSN))
    assert outcome_code(response) in ("not-matched", "review")
    evidence = evidence_of(old_payer, ops, response)
    assert evidence["member"] is None
    sister = held_back(evidence, "sister")
    assert sister["levels"]["ssn"] == "exact"
    assert sister["levels"]["given_name"] == "else"
    assert sister["levels"]["birth_date"] == "else"
    assert set(sister["guard_violations"]) >= {
        "given_name_conflict",
        "birth_date_conflict",
        "household_evidence_only",
    }
    assert sister["household_evidence"][0] == "ssn"
    assert {"family_name", "street_address", "postal_code"} <= set(sister["household_evidence"])
    # The member herself, with the same SSN, is found.
    assert outcome_code(ask(old_payer, request(["Amanda"], "2008-03-14", SISTER_SSN))) == (
        "Patient/sister"
    )


def test_a_newborn_on_her_sisters_ssn_is_not_her_sister(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """Issue 66's held-out false match, as a plan sees it each enrolment season: a baby who
    never enrolled, carrying her older sister's SSN, with the family's surname and home,
    the same sex, no card, a first name that shares little more than its first letter
    with her sister's (Adaora, Amara) and born five years later. Not her sister, and the
    evidence names what the household shares, what of the baby's own disagrees, and the
    pattern."""
    response = ask(
        old_payer,
        request(["Adaora"], "2026-06-02", AMARA_SSN, family="Okafor", address=OKAFOR_HOME),
    )
    # Two disagreements of her own against a household's identifiers: no one to propose.
    assert outcome_code(response) == "not-matched"
    evidence = evidence_of(old_payer, ops, response)
    assert evidence["member"] is None
    assert evidence["reason"] == "guard_violation"
    sister = held_back(evidence, "amara")
    assert sister["levels"]["ssn"] == "exact"
    assert sister["levels"]["birth_date"] == "else"
    assert sister["rule"] is None
    assert {"birth_date_conflict", "household_evidence_only", "younger_on_shared_ssn"} <= set(
        sister["guard_violations"]
    )
    assert sister["household_evidence"][0] == "ssn"
    assert {"family_name", "street_address", "postal_code"} <= set(sister["household_evidence"])
    assert sister["own_evidence_against"] == ["given_name", "birth_date"]
    # Amara herself, with her SSN, is found.
    amara = request(["Amara"], "2021-06-10", AMARA_SSN, family="Okafor", address=OKAFOR_HOME)
    assert outcome_code(ask(old_payer, amara)) == "Patient/amara"


def test_an_initial_with_a_twins_ssn_goes_to_a_person(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """Only an initial, the member's SSN, birth date, surname and home: her twin, named
    with the same initial and carrying her SSN, looks the same. An SSN confirms no
    initial (a household shares it): a person decides, and sees what held the pair."""
    response = ask(old_payer, request(["A"], "2008-03-14", SISTER_SSN))
    assert outcome_code(response) == "review"
    evidence = evidence_of(old_payer, ops, response)
    assert evidence["review_reason"] == "given_name_unconfirmed"
    sister = held_back(evidence, "sister")
    assert sister["levels"]["given_name"] == "initial"
    assert sister["household_evidence"][0] == "ssn"


def test_a_mothers_ssn_on_her_daughters_request_is_not_the_mother(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """A daughter who never enrolled shows her mother's SSN; her name is like her mother's
    (Mariana, Maria) and she was born twenty years later."""
    response = ask(old_payer, request(["Mariana"], "2000-01-30", MOTHER_SSN))
    assert outcome_code(response) in ("not-matched", "review")
    mother = held_back(evidence_of(old_payer, ops, response), "mother")
    assert mother["levels"]["ssn"] == "exact"
    assert mother["levels"]["birth_date"] == "other_generation"
    assert mother["rule"] is None
    assert {"birth_date_conflict", "household_evidence_only"} <= set(mother["guard_violations"])


def test_a_twin_carrying_her_sisters_ssn_goes_to_a_reviewer_who_sees_why(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """A twin who never enrolled: her sister's SSN and birth date, another given name. The
    review case says why it was opened."""
    response = ask(old_payer, request(["Olivia"], "2008-03-14", SISTER_SSN))
    assert outcome_code(response) == "review"
    cases = ops.get("/identity/reviews").json()["reviews"]
    evidence = evidence_of(old_payer, ops, response)
    [case] = [c for c in cases if c["decision"] == evidence["decision"]]
    assert case["opened_because"] == "given_name_conflict, household_evidence_only"
    sister = held_back(evidence, "sister")
    assert sister["household_evidence"][0] == "ssn"
    assert sister["own_evidence_against"] == ["given_name"]
    assert sister["levels"]["birth_date"] == "exact"
    # The reviewer's side-by-side view says the same.
    shown = ops.get(f"/identity/reviews/{case['id']}").json()["comparison"]["candidates"][0]
    assert shown["member"] == "sister"
    assert shown["household_evidence"][0] == "ssn"
    assert shown["own_evidence_against"] == ["given_name"]


def test_strangers_whose_own_ssns_disagree_are_not_matched(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """A woman with the member's rare given and middle names and her birth date with day
    and month swapped, in the same ZIP code, but another surname, another street and her
    own, different SSN: the SSN each holds as her own is a guard of its own (the unit
    suite shows it holding back a weight in the auto band), named as the review's reason."""
    elsewhere = {"use": "home", "line": ["700 Ocean Avenue"], "postalCode": "60601"}
    body = request(
        ["Zephyrine", "Odalys"],
        "1990-03-04",
        "731-90-2468",
        family="Kowalczyk",
        address=elsewhere,
        phone=False,
    )
    response = ask(old_payer, body)
    assert outcome_code(response) == "review"
    evidence = evidence_of(old_payer, ops, response)
    assert evidence["review_reason"] == "ssn_mismatch"
    found = held_back(evidence, "zephyrine")
    assert found["levels"]["ssn"] == "else"
    # Her own SSN a typo away is no disagreement: she is found.
    typo = request(
        ["Zephyrine", "Odalys"],
        "1990-03-04",
        "468-22-1375",
        family="Kowalczyk",
        address=elsewhere,
        phone=False,
    )
    assert outcome_code(ask(old_payer, typo)) == "Patient/zephyrine"


def test_a_namesake_son_carrying_his_fathers_ssn_is_not_the_father(
    old_payer: ServerProcess, ops: httpx.Client
) -> None:
    """A son who never enrolled, named after his father and showing his SSN, born thirty
    years later, no suffix on either: ``ssn_full_name`` took a birth date a generation
    away (the subscriber's entered for a dependent); a household's SSN does not."""
    body = request(["Alejandro"], "1996-07-02", "555-12-9999")
    body["parameter"][0]["resource"]["gender"] = "male"
    response = ask(old_payer, body)
    assert outcome_code(response) in ("not-matched", "review")
    father = held_back(evidence_of(old_payer, ops, response), "father")
    assert father["levels"]["given_name"] == "exact"
    assert father["levels"]["birth_date"] == "other_generation"
    assert father["rule"] is None
    assert "birth_date_conflict" in father["guard_violations"]
