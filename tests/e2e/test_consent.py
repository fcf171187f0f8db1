"""Consent end to end, with two payer processes: segmentation by policy, expiry, revocation
mid-flight, and bad Consents refused with nothing stored."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt

from payerbridge.consent.model import ConsentRole
from payerbridge.fhir.codes import CONSENT_POLICY
from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from tests.builders import a_coverage, a_patient, an_exchange_request, member_match_parameters
from tests.e2e.test_exchange import _references, stored_everything, wait_terminal
from tests.servers import (
    ALL_SCOPES,
    REQUESTER_SCOPES,
    ServerProcess,
    new_key,
    new_signing_key,
    public_jwk,
)

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
FHIR = {"Content-Type": "application/fhir+json"}


def condition(cid: str, patient: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": ICD10, "code": code}]},
    }


def member_records(
    pid: str, sensitive_code: str, member_id: str, subscriber: str
) -> list[dict[str, Any]]:
    """A member with one sensitive Condition, an Encounter for it, and plain data, one
    plain Observation pointing at the sensitive Condition."""
    sensitive, plain = f"{pid}-sens", f"{pid}-flu"
    return [
        a_patient(pid, **PEOPLE[pid]["patient"], member_id=member_id),
        a_coverage(f"{pid}-cov", patient=pid, member_id=member_id, subscriber_id=subscriber),
        condition(sensitive, pid, sensitive_code),
        condition(plain, pid, "J10.1"),
        {
            "resourceType": "Encounter",
            "id": f"{pid}-enc-sens",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
            "reasonReference": [{"reference": f"Condition/{sensitive}"}],
        },
        {
            "resourceType": "Encounter",
            "id": f"{pid}-enc-flu",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
            "reasonReference": [{"reference": f"Condition/{plain}"}],
        },
        {
            "resourceType": "Observation",
            "id": f"{pid}-obs",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "focus": [{"reference": f"Condition/{sensitive}"}],
            "valueQuantity": {"value": 72, "unit": "/min"},
        },
    ]


PEOPLE: dict[str, dict[str, Any]] = {
    "p1": {
        "patient": {"family": "Garcia", "given": "Ana", "birth_date": "1980-02-03"},
        "request": {},
    },
    "p2": {
        "patient": {
            "family": "Okafor",
            "given": "Chidi",
            "birth_date": "1975-05-06",
            "gender": "male",
        },
        "request": {
            "given": ["Chidi"],
            "family": "Okafor",
            "birth_date": "1975-05-06",
            "gender": "male",
        },
    },
}


def _person(family: str, given: str, birth_date: str, gender: str) -> dict[str, Any]:
    return {
        "patient": {"family": family, "given": given, "birth_date": birth_date, "gender": gender},
        "request": {"given": [given], "family": family, "birth_date": birth_date, "gender": gender},
    }


# The old payer's server is shared by the module's tests: each test has members of its own
# (p1 and p2 are the two-member test's), so that none sees another's consents or matches.
PEOPLE.update(
    {
        "p3": _person("Lindqvist", "Bea", "1982-07-08", "female"),
        "p4": _person("Volkov", "Dmitri", "1969-09-10", "male"),
        "p5": _person("Yilmaz", "Elif", "1990-11-12", "female"),
        "p6": _person("Haddad", "Farid", "1985-01-14", "male"),
        "p7": _person("Novak", "Greta", "1978-03-16", "female"),
        "p8": _person("Tanaka", "Hiro", "1972-04-18", "male"),
        "p9": _person("Berg", "Jonas", "1965-08-22", "male"),
        "p10": _person("Adeyemi", "Kemi", "1993-10-24", "female"),
        "p11": _person("Romano", "Luca", "1970-12-26", "male"),
        "p12": _person("Olsen", "Mara", "1987-02-28", "female"),
    }
)
# Each member's sensitive code (42 CFR 2 substance use, or HIV), member id and subscriber.
MEMBERS: dict[str, tuple[str, str, str]] = {
    "p1": ("F10.20", "M123", "S1"),
    "p2": ("B20", "M200", "S2"),
    **{
        pid: ("F10.20", f"M{pid[1:]}00", f"S{pid[1:]}") for pid in PEOPLE if pid not in {"p1", "p2"}
    },
}
MEMBERS["p12"] = ("B20", "M1200", "S12")


def exchange_request(pid: str, policy: str, member_id: str, subscriber: str) -> dict[str, Any]:
    request = an_exchange_request("old", **PEOPLE[pid]["request"])
    request["old_coverage"] = {
        "member_id": member_id,
        "subscriber_id": subscriber,
        "relationship": "self",
    }
    request["new_coverage"] = {"member_id": f"N-{pid}", "relationship": "self"}
    request["consent"] = {**request["consent"], "policy": policy}
    return request


def start_old(
    start: Callable[..., ServerProcess], directory: Path, pids: list[str]
) -> ServerProcess:
    """The old payer, holding the members ``pids``."""
    data = directory / "old.ndjson"
    resources = [r for pid in pids for r in member_records(pid, *MEMBERS[pid])]
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    return start(
        "old",
        env={"PAYERBRIDGE_ORG_NAME": "Old Plan", "PAYERBRIDGE_ORG_NPI": OLD_NPI},
        import_files=[data],
    )


@pytest.fixture(scope="module")
def old(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """The old payer the module's tests share, with every test's members."""
    return start_old(module_server, tmp_path_factory.mktemp("old-data"), list(MEMBERS))


@pytest.fixture
def fresh_old(server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    """An old payer of the test's own, for a test that depends on timing."""
    return start_old(server, tmp_path, ["p1", "p2"])


def new_plan(old: ServerProcess) -> tuple[str, str]:
    """A client of ``old`` of the test's own, registered as the new payer (its NPI), and
    its access token."""
    client_id = f"newplan-{uuid.uuid4().hex[:8]}"
    return client_id, old.register_client(client_id, npi=NEW_NPI, scope=ALL_SCOPES)


def match_parameters(pid: str, **more: Any) -> dict[str, Any]:
    """The $member-match Parameters for the member ``pid`` (under a sensitive-data
    opt-in, as ``member_match_parameters``' own)."""
    return member_match_parameters(exchange_request(pid, "sensitive", *MEMBERS[pid][1:]), **more)


def new_payer(
    server: Callable[..., ServerProcess], old_base: str, old: ServerProcess
) -> ServerProcess:
    """The new payer, registered with ``old`` as a client (its own key) and calling it at
    ``old_base``."""
    new = server("new", env={"PAYERBRIDGE_ORG_NAME": "New Plan", "PAYERBRIDGE_ORG_NPI": NEW_NPI})
    old.trust(new, "new-platform", npi=NEW_NPI)
    with portal(new) as client:
        response = client.post(
            "/partners",
            json={
                "id": "old",
                "name": "Old Plan",
                "npi": OLD_NPI,
                "base_url": old_base,
                "client_id": "new-platform",
                # The old payer's own token endpoint: on another origin when old_base is a
                # proxy, which only an operator's entry approves (ADR 0027).
                "token_url": f"{old.base_url}/auth/token",
            },
        )
        assert response.status_code == 201, response.text
    return new


@pytest.fixture(scope="module")
def new(module_server: Callable[..., ServerProcess], old: ServerProcess) -> ServerProcess:
    """The new payer the module's tests share, calling the shared ``old`` directly."""
    return new_payer(module_server, old.fhir_base, old)


def portal(new: ServerProcess) -> httpx.Client:
    """A client of ``new`` of the test's own, with every scope."""
    return new.client_with(new.register_client(f"portal-{uuid.uuid4().hex[:8]}", scope=ALL_SCOPES))


def codes_of(resources: list[dict[str, Any]]) -> set[str]:
    return {
        c["code"]
        for r in resources
        if r["resourceType"] == "Condition"
        for c in r["code"]["coding"]
    }


def test_a_regular_consent_receives_no_sensitive_resource_and_a_sensitive_one_does(
    new: ServerProcess, old: ServerProcess
) -> None:
    with portal(new) as client:
        done = {}
        for pid, policy, member_id, subscriber in (
            ("p1", "regular", "M123", "S1"),
            ("p2", "sensitive", "M200", "S2"),
        ):
            response = client.post(
                "/exchanges",
                headers=new_key(),
                json=exchange_request(pid, policy, member_id, subscriber),
            )
            assert response.status_code == 202, response.text
            done[pid] = wait_terminal(client, response.headers["location"])
    assert {pid: e["state"] for pid, e in done.items()} == {"p1": "completed", "p2": "completed"}, (
        done
    )

    # What the old payer released under the regular consent: no sensitive Condition, no
    # Encounter for it, and no reference to either anywhere (the Observation lost its focus).
    _, reader = new_plan(old)
    with old.client_with(reader) as client:
        regular = client.get("/fhir/Patient/p1/$everything").json()
        sensitive = client.get("/fhir/Patient/p2/$everything").json()
        withheld_read = client.get("/fhir/Condition/p1-sens")
        plain_read = client.get("/fhir/Condition/p1-flu")
    released = [e["resource"] for e in regular["entry"]]
    ids = {f"{r['resourceType']}/{r['id']}" for r in released}
    assert "Condition/p1-sens" not in ids and "Encounter/p1-enc-sens" not in ids
    assert {"Condition/p1-flu", "Encounter/p1-enc-flu", "Observation/p1-obs"} <= ids
    assert not set(_references(released)) & {"Condition/p1-sens", "Encounter/p1-enc-sens"}
    assert regular["total"] == 5  # Patient, Coverage, flu Condition, its Encounter, Observation
    assert withheld_read.status_code == 404 and plain_read.status_code == 200
    all_data = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in sensitive["entry"]
    }
    assert {"Condition/p2-sens", "Encounter/p2-enc-sens"} <= all_data

    # What the new payer imported matches: the regular member has no sensitive code.
    imported_regular = stored_everything(new, done["p1"]["imported_patient_id"])
    imported_sensitive = stored_everything(new, done["p2"]["imported_patient_id"])
    regular_resources = [e["resource"] for e in imported_regular["entry"]]
    assert codes_of(regular_resources) == {"J10.1"}
    assert sum(r["resourceType"] == "Encounter" for r in regular_resources) == 1
    assert codes_of([e["resource"] for e in imported_sensitive["entry"]]) == {"J10.1", "B20"}
    # The decisions were audited with reason, policy and version; the withheld count only
    # in the old payer's audit trail.
    with old.platform() as platform:
        decisions = [
            e
            for e in platform.audit.for_entity("Patient", "p1")
            if e["action"] == "consent.decision"
        ]
        released_events = [
            e
            for e in platform.audit.for_entity("Patient", "p1")
            if e["action"] == "patient.everything"
        ]
    assert decisions and all(d["outcome"] == "permit" for d in decisions)
    assert {d["detail"]["hop"] for d in decisions} >= {"member-match", "everything"}
    assert all(d["detail"]["policy_version"] == "consent-policy/1" for d in decisions)
    assert released_events[0]["detail"]["withheld"] == 2
    assert released_events[0]["detail"]["policy"] == "regular"


def test_an_expired_consent_gets_422_that_says_why(old: ServerProcess) -> None:
    parameters = match_parameters("p3", start="2020-01-01", end="2020-03-01")
    _, requester = new_plan(old)
    with old.client_with(requester) as client:
        response = client.post("/fhir/Patient/$member-match", json=parameters, headers=FHIR)
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert issue["details"]["coding"][0]["code"] == "expired"
    assert "consent period has ended" in issue["details"]["text"]
    assert "MemberIdentifier" not in response.text  # HRex: no member id goes out
    with old.client_with(requester) as client:  # and no data either
        assert client.get("/fhir/Patient/p3/$everything").status_code == 403


# Each case's own member on the shared old payer.
BAD_CONSENT_MEMBER = {
    "Consent.provision.period": "p4",
    "Consent.sourceReference": "p5",
    "Consent.policy": "p6",
    "Consent.status": "p7",
}


@pytest.mark.parametrize(
    ("break_it", "element"),
    [
        (lambda c: c["provision"].pop("period"), "Consent.provision.period"),
        (lambda c: c.pop("sourceReference"), "Consent.sourceReference"),
        (lambda c: c["policy"].append({"uri": CONSENT_POLICY["regular"]}), "Consent.policy"),
        (lambda c: c.update(status="draft"), "Consent.status"),
    ],
)
def test_a_bad_consent_is_422_naming_the_element_and_nothing_is_stored(
    old: ServerProcess, break_it: Callable[[dict[str, Any]], Any], element: str
) -> None:
    member = BAD_CONSENT_MEMBER[element]
    parameters = match_parameters(member)
    consent = next(p["resource"] for p in parameters["parameter"] if p["name"] == "Consent")
    break_it(consent)
    client_id, requester = new_plan(old)
    with old.client_with(requester) as client:
        response = client.post("/fhir/Patient/$member-match", json=parameters, headers=FHIR)
    assert response.status_code == 422, response.text
    expressions = {e for i in response.json()["issue"] for e in i.get("expression", [])}
    assert element in expressions, response.text
    assert_nothing_stored(old, member, client_id)


def test_a_consent_naming_another_recipient_than_the_caller_is_refused(old: ServerProcess) -> None:
    # The caller is registered as NPI 1234567893; this consent lets someone else receive.
    parameters = match_parameters("p8", our_npi="1679576722")
    client_id, requester = new_plan(old)
    with old.client_with(requester) as client:
        response = client.post("/fhir/Patient/$member-match", json=parameters, headers=FHIR)
    assert response.status_code == 422
    issues = response.json()["issue"]
    assert any(
        "Consent.provision.actor" in i.get("expression", [])
        and "requesting organization" in i["details"]["text"]
        for i in issues
    )
    assert_nothing_stored(old, "p8", client_id)


def assert_nothing_stored(old: ServerProcess, member: str, client_id: str) -> None:
    """No consent of ``member``, none of any member for the caller ``client_id`` (the
    server is shared: other tests' members have theirs), no member id handed out."""
    with old.platform() as platform:
        assert platform.consents.for_member(member, ConsentRole.DISCLOSE) == []
        assert platform.consents.members_disclosed_to(client_id) == []
        umb = [
            i
            for i in platform.members.read("Patient", member)["identifier"]
            if i.get("type", {}).get("coding", [{}])[0].get("code") == "UMB"
        ]
        assert umb == []  # no member id was handed out either


def test_revoked_mid_flight_blocks_the_exchange_and_nothing_is_sent_after(
    server: Callable[..., ServerProcess],
    fresh_old: ServerProcess,
    proxies: Callable[..., tuple[str, Path]],
) -> None:
    # Timing matters here: payers of this test's own, not the shared ones.
    old = fresh_old
    slow_url, calls = proxies(old.base_url, delay=1.5)
    new = new_payer(server, slow_url, old)
    with new.client() as client:
        response = client.post(
            "/exchanges", headers=new_key(), json=exchange_request("p1", "sensitive", "M123", "S1")
        )
        location = response.headers["location"]
        consent_id = response.json()["consent_id"]
        deadline = time.monotonic() + 30
        while client.get(location).json()["state"] != "route_selected":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # $member-match is now on the wire (1.5 s): the member revokes.
        revoked = client.post(f"/consents/{consent_id}/$revoke", json={"revoked_by": "member"})
        assert revoked.status_code == 200, revoked.text
        revoked_at = datetime.fromisoformat(revoked.json()["revoked_at"])
        assert revoked.json()["blocked_exchanges"] == [location.rsplit("/", 1)[1]]
        time.sleep(4)  # the match answer arrives, and whatever a worker would do next
        exchange = client.get(location).json()
        again = client.post(f"/consents/{consent_id}/$revoke")  # idempotent
    assert exchange["state"] == "blocked" and exchange["error"]["code"] == "revoked"
    assert exchange["history"][-1]["actor"] == "member"
    assert exchange["imported_patient_id"] is None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    # The old payer was asked for no data, before or after the revocation.
    paths = [json.loads(line)["path"] for line in calls.read_text().splitlines()]
    assert not [p for p in paths if p.endswith("$everything")], paths
    with old.platform() as platform:
        released = [
            e
            for e in platform.audit.for_entity("Patient", "p1")
            if e["action"] == "patient.everything"
        ]
    assert released == []
    assert revoked_at.tzinfo is not None


def test_a_consent_revoked_at_the_old_payer_stops_its_data(old: ServerProcess) -> None:
    client_id, requester = new_plan(old)
    with old.client_with(requester) as client:
        matched = client.post(
            "/fhir/Patient/$member-match", json=match_parameters("p9"), headers=FHIR
        )
        assert matched.status_code == 200, matched.text
        assert client.get("/fhir/Patient/p9/$everything").status_code == 200
        [consent] = client.get("/consents", params={"member_id": "p9"}).json()
        assert consent["role"] == "disclose" and consent["recorded_by"] == client_id
        assert client.post(f"/consents/{consent['id']}/$revoke").status_code == 200
        refused = client.get("/fhir/Patient/p9/$everything")
    assert refused.status_code == 403
    issue = refused.json()["issue"][0]
    assert issue["code"] == "forbidden" and issue["details"]["coding"][0]["code"] == "revoked"


def test_an_opt_in_captured_ahead_runs_exchanges_by_its_id(new: ServerProcess) -> None:
    with portal(new) as client:
        captured = client.post(
            "/consents",
            json={
                "member_id": "N-p10",
                "old_payer": "old",
                "policy": "sensitive",
                "start": "2026-01-01",
                "end": "2099-01-01",
                "source_reference": "DocumentReference/optin-9",
            },
        )
        assert captured.status_code == 201, captured.text
        consent_id = captured.json()["id"]
        request = exchange_request("p10", "sensitive", *MEMBERS["p10"][1:])
        del request["consent"]
        other_member = {
            **request,
            "new_coverage": {"member_id": "N-someone-else"},
            "consent_id": consent_id,
        }
        refused = client.post("/exchanges", headers=new_key(), json=other_member)
        response = client.post(
            "/exchanges", headers=new_key(), json={**request, "consent_id": consent_id}
        )
        assert response.status_code == 202, response.text
        exchange = wait_terminal(client, response.headers["location"])
    assert refused.status_code == 422 and "another member" in refused.text
    assert exchange["state"] == "completed" and exchange["consent_id"] == consent_id
    assert captured.json()["role"] == "receive" and captured.json()["source_npi"] == OLD_NPI


def test_a_member_scoped_token_after_member_match_reads_that_member_only(
    old: ServerProcess,
) -> None:
    """PDex: after $member-match the requester asks a token scoped to the matched member
    (``patient`` = the MemberId); the token is granted under that member's consent only,
    and reads nobody else."""
    key = new_signing_key()
    data_client = f"newplan-data-{uuid.uuid4().hex[:8]}"
    old.register_client(
        data_client, npi=NEW_NPI, scope=REQUESTER_SCOPES, jwks={"keys": [public_jwk(key)]}
    )
    _, requester = new_plan(old)
    with old.client_with(requester) as client:
        matched = client.post(
            "/fhir/Patient/$member-match", json=match_parameters("p11"), headers=FHIR
        )
        assert matched.status_code == 200, matched.text
    member = next(
        p["valueReference"]["reference"].split("/")[-1]
        for p in matched.json()["parameter"]
        if p["name"] == "MemberId"
    )
    assert member == "p11"

    def token_for(patient: str) -> httpx.Response:
        now = int(time.time())
        claims = {
            "iss": data_client,
            "sub": data_client,
            "aud": f"{old.base_url}/auth/token",
            "iat": now,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
        }
        signed = jwt.encode({"alg": "ES384", "kid": key.kid}, claims, key, algorithms=["ES384"])
        return httpx.post(
            f"{old.base_url}/auth/token",
            data={
                "grant_type": "client_credentials",
                "scope": "patient/*.rs",
                "patient": patient,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": signed,
            },
            timeout=10,
        )

    granted = token_for(member)
    assert granted.status_code == 200, granted.text
    with old.client_with(granted.json()["access_token"]) as scoped:
        assert scoped.get(f"/fhir/Patient/{member}/$everything").status_code == 200
        assert scoped.get("/fhir/Patient/p12/$everything").status_code == 404
        assert scoped.get("/fhir/Patient", params={"identifier": "S12"}).json()["total"] == 0
        assert scoped.post("/fhir/Patient/$member-match", json={}, headers=FHIR).status_code == 403
        # Bulk work holds many members: never a member-scoped token's.
        async_ = {"Prefer": "respond-async"}
        assert scoped.get("/fhir/Patient/$export", headers=async_).status_code == 403
        assert scoped.get("/fhir/Group").status_code == 403
    refused = token_for("p12")  # no consent was presented for p12
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
