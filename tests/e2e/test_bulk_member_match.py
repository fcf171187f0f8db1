"""PDex ``$bulk-member-match`` against a real server process: kick-off, polling, the
manifest, the three Groups in both PDex forms, reading and searching the Groups, cancel,
and the bad input the guide and Bulk Data name."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests import fhir_profiles
from tests.builders import a_coverage, a_member_bundle, a_patient
from tests.servers import REQUESTER_SCOPES, ServerProcess, start_server

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {**FHIR, "Prefer": "respond-async"}
KICK_OFF = "/fhir/Group/$bulk-member-match"
RESULT_SYSTEM = "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS"

# The old payer's members: (id, given, family, birth date, gender, member id).
MEMBERS = [
    ("ana", "Ana", "Garcia", "1980-02-03", "female", "M123"),
    ("luis", "Luis", "Ortega", "1975-07-21", "male", "M456"),
    ("noor", "Noor", "Haddad", "1991-11-30", "female", "M789"),
]


@pytest.fixture
def old_payer(server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    resources: list[dict[str, Any]] = []
    for pid, given, family, birth, gender, member_id in MEMBERS:
        resources.append(
            a_patient(
                pid,
                given=given,
                family=family,
                birth_date=birth,
                gender=gender,
                member_id=member_id,
            )
        )
        resources.append(
            a_coverage(f"{pid}-cov", patient=pid, member_id=member_id, subscriber_id=member_id)
        )
    data = tmp_path / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    payer = server("old", env={"PAYERBRIDGE_ORG_NPI": OLD_NPI}, import_files=[data])
    return payer.authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)


@pytest.fixture
def client(old_payer: ServerProcess) -> Iterator[httpx.Client]:
    with old_payer.client() as requester:
        yield requester


def four_members() -> dict[str, Any]:
    """Ana (matched, with CoverageToLink), Luis (matched, without), a stranger (not
    matched) and Noor (matched, with a consent policy we cannot honour)."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            a_member_bundle("sub-ana", *MEMBERS[0][1:]),
            a_member_bundle("sub-luis", *MEMBERS[1][1:], link=False),
            a_member_bundle("sub-zora", "Zora", "Quinlan", "1961-12-30", "female", "ZZZ999"),
            a_member_bundle(
                "sub-noor", *MEMBERS[2][1:], policy_uri="http://example.org/policy/unheard-of"
            ),
        ],
    }


def wait_for_manifest(client: httpx.Client, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        answer = client.get(status_url, headers={"Accept": "application/json"})
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        assert "members" in answer.headers["X-Progress"]
        assert int(answer.headers["Retry-After"]) >= 1
        time.sleep(0.2)
    raise AssertionError("the job did not complete in time")


def kick_off(client: httpx.Client, body: dict[str, Any], **headers: str) -> str:
    answer = client.post(KICK_OFF, json=body, headers={**ASYNC, **headers})
    assert answer.status_code == 202, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    return str(answer.headers["Content-Location"])


def ndjson(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    answer = client.get(url, headers={"Accept": "application/fhir+ndjson"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in answer.content.splitlines() if line]


def code_of(group: dict[str, Any]) -> str:
    return str(group["code"]["coding"][0]["code"])


def test_four_members_give_the_three_groups_in_both_forms(client: httpx.Client) -> None:
    status_url = kick_off(client, four_members())
    manifest = wait_for_manifest(client, status_url)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith(KICK_OFF)
    assert manifest["error"] == [] and manifest["transactionTime"]
    [output] = manifest["output"]
    assert output["type"] == "Group" and output["count"] == 3
    matched, not_matched, constrained = ndjson(client, output["url"])
    assert [code_of(g) for g in (matched, not_matched, constrained)] == [
        "match",
        "nomatch",
        "consentconstraint",
    ]
    ours = sorted(m["entity"]["reference"] for m in matched["member"])
    assert ours == ["Patient/ana", "Patient/luis"]
    assert matched["quantity"] == 2
    assert [m["entity"]["reference"] for m in not_matched["member"]] == ["#sub-zora"]
    assert [m["entity"]["reference"] for m in constrained["member"]] == ["#sub-noor"]
    # The submitted Patients are contained as submitted (ids and names kept).
    assert sorted(p["id"] for p in matched["contained"]) == ["sub-ana", "sub-luis"]
    assert constrained["contained"][0]["name"][0]["family"] == "Haddad"
    for group in (matched, not_matched, constrained):
        assert group["identifier"][0]["value"] == NEW_NPI
        kind = "match" if group is matched else "no-match"
        profile = fhir_profiles.load("pdex-2.2.0", f"StructureDefinition-pdex-member-{kind}-group")
        assert fhir_profiles.violations(group, profile, "pdex-2.2.0") == []

    # The Groups are kept: read by id, and found by the requester's NPI and the result.
    read = client.get(f"/fhir/Group/{matched['id']}", headers=FHIR)
    assert read.status_code == 200 and read.json() == matched
    found = client.get(
        "/fhir/Group",
        params={"identifier": f"http://hl7.org/fhir/sid/us-npi|{NEW_NPI}", "code": "match"},
    )
    assert found.status_code == 200
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [matched["id"]]
    by_characteristic = client.get(
        "/fhir/Group", params={"characteristic": f"{RESULT_SYSTEM}|consentconstraint"}
    ).json()
    assert [e["resource"]["id"] for e in by_characteristic["entry"]] == [constrained["id"]]
    either = client.get("/fhir/Group", params={"code": "match,consentconstraint"}).json()
    assert sorted(e["resource"]["id"] for e in either["entry"]) == sorted(
        [matched["id"], constrained["id"]]
    )
    both = client.get("/fhir/Group", params=[("code", "match"), ("code", "nomatch")]).json()
    assert both["total"] == 0
    by_requester = client.get(
        "/fhir/Group",
        params={"characteristic-value-reference:identifier": NEW_NPI, "code": "nomatch"},
    ).json()
    assert [e["resource"]["id"] for e in by_requester["entry"]] == [not_matched["id"]]

    # PDex 2.1's form: one Parameters under 2.1's names, asked for by header.
    status_21 = kick_off(client, four_members(), **{"X-PDex-Spec-Version": "2.1.0"})
    [output_21] = wait_for_manifest(client, status_21)["output"]
    assert output_21["type"] == "Parameters" and output_21["count"] == 1
    [parameters] = ndjson(client, output_21["url"])
    assert [p["name"] for p in parameters["parameter"]] == [
        "ResourceIdentifier",
        "NoMatch",
        "ConsentConstraint",
    ]
    profile = fhir_profiles.load(
        "pdex-2.1.0", "StructureDefinition-pdex-parameters-multi-member-match-bundle-out"
    )
    assert fhir_profiles.violations(parameters, profile, "pdex-2.1.0") == []


def test_only_the_requesting_client_sees_its_job_files_and_groups(
    old_payer: ServerProcess, client: httpx.Client
) -> None:
    status_url = kick_off(client, four_members())
    [output] = wait_for_manifest(client, status_url)["output"]
    [matched, *_] = ndjson(client, output["url"])
    token = old_payer.register_client("otherplan", npi="1003000126", scope=REQUESTER_SCOPES)
    with old_payer.client_with(token) as other, old_payer.anonymous() as anonymous:
        for url in (status_url, output["url"], f"{old_payer.fhir_base}/Group/{matched['id']}"):
            answer = other.get(url)
            assert answer.status_code == 404, url
            assert answer.json()["resourceType"] == "OperationOutcome"
        assert other.get("/fhir/Group", params={"code": "match"}).json()["total"] == 0
        assert other.delete(status_url).status_code == 404
        assert anonymous.get(status_url).status_code == 401

    # PDex 2.2's own scope for the operation does; resource scopes alone do not.
    pdex_scope = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch"
    bulk_only = old_payer.register_client("bulkplan", npi="1003000134", scope=pdex_scope)
    reader = old_payer.register_client("readplan", npi="1003000142", scope="system/*.rs")
    with old_payer.client_with(bulk_only) as bulk, old_payer.client_with(reader) as read_only:
        assert bulk.post(KICK_OFF, json=four_members(), headers=ASYNC).status_code == 202
        refused = read_only.post(KICK_OFF, json=four_members(), headers=ASYNC)
        assert refused.status_code == 403 and outcome_codes(refused) == ["forbidden"]

    # Cancelled (here: its output dropped): gone for its client too.
    assert client.delete(status_url).status_code == 202
    assert client.get(status_url).status_code == 404
    assert client.get(output["url"]).status_code == 404
    assert client.get(f"/fhir/Group/{matched['id']}").status_code == 404


def outcome_codes(answer: httpx.Response) -> list[str]:
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert all(issue["details"]["text"] for issue in body["issue"])
    return [issue["code"] for issue in body["issue"]]


def test_bad_kick_offs_are_refused_saying_why(client: httpx.Client) -> None:
    no_prefer = client.post(KICK_OFF, json=four_members(), headers=FHIR)
    assert no_prefer.status_code == 400 and outcome_codes(no_prefer) == ["required"]

    without_consent = four_members()
    bundle = without_consent["parameter"][1]
    bundle["part"] = [p for p in bundle["part"] if p["name"] != "Consent"]
    refused = client.post(KICK_OFF, json=without_consent, headers=ASYNC)
    assert refused.status_code == 422
    assert any("MemberBundle 1" in i["details"]["text"] for i in refused.json()["issue"])

    wrong_type = client.post(KICK_OFF, json={"resourceType": "Bundle"}, headers=ASYNC)
    assert wrong_type.status_code == 422 and "Parameters" in wrong_type.text

    bad_version = client.post(
        KICK_OFF, json=four_members(), headers={**ASYNC, "X-PDex-Spec-Version": "3.0"}
    )
    assert bad_version.status_code == 400 and outcome_codes(bad_version) == ["not-supported"]

    assert client.get("/fhir/bulk-status/no-such-job").status_code == 404
    assert client.get("/fhir/Group/no-such-group").status_code == 404
    unknown_parameter = client.get("/fhir/Group", params={"name": "Matched"})
    assert unknown_parameter.status_code == 400
    assert outcome_codes(unknown_parameter) == ["not-supported"]
    bad_code = client.get("/fhir/Group", params={"code": "maybe"})
    assert bad_code.status_code == 400 and outcome_codes(bad_code) == ["code-invalid"]
    # Nothing was kept of the refused requests.
    assert client.get("/fhir/Group").json()["total"] == 0


def test_a_job_whose_server_is_killed_resumes_after_a_restart_without_doing_anything_twice(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """One member per chunk, and the server SIGKILLed while the job runs: started again,
    it recovers the job's workflow, which carries on after the last committed chunk."""
    count = 120
    people = [
        (f"m{n}", f"Given{n:03d}", f"Family{n:03d}", f"19{50 + n % 40}-0{1 + n % 9}-1{n % 10}")
        for n in range(count)
    ]
    resources: list[dict[str, Any]] = []
    for pid, given, family, birth in people:
        resources.append(
            a_patient(pid, given=given, family=family, birth_date=birth, member_id=f"{pid}-card")
        )
        resources.append(a_coverage(f"{pid}-cov", patient=pid, member_id=f"{pid}-card"))
    data = tmp_path / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    old = server(
        "old",
        env={"PAYERBRIDGE_ORG_NPI": OLD_NPI, "PAYERBRIDGE_BULK_CHUNK_MEMBERS": "1"},
        import_files=[data],
    )
    old.authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            a_member_bundle(f"sub-{pid}", given, family, birth, "female", f"{pid}-card")
            for pid, given, family, birth in people
        ],
    }
    restarted: ServerProcess | None = None
    try:
        with old.client() as client:
            status_url = kick_off(client, body)
            while True:  # kill it mid-flight
                polled = client.get(status_url)
                assert polled.status_code == 202, "the job ended before it could be killed"
                done = int(polled.headers["X-Progress"].split(": ")[1].split(" of ")[0])
                if done >= 5:
                    break
                time.sleep(0.02)
        old.process.kill()
        old.process.wait()
        restarted = start_server(old.data_dir, env=old.env, import_files=[], port=old.port)
        restarted.credential = old.credential
        with restarted.client() as client:
            [output] = wait_for_manifest(client, status_url)["output"]
            matched, *others = ndjson(client, output["url"])
        assert matched["quantity"] == count and others == []
        assert sorted(m["entity"]["reference"] for m in matched["member"]) == sorted(
            f"Patient/{pid}" for pid, *_ in people
        )
        with restarted.platform() as platform, platform.engine.connect() as connection:
            from sqlalchemy import func, select

            from payerbridge.store.tables import identity_decisions

            decided = connection.execute(
                select(func.count()).select_from(identity_decisions)
            ).scalar_one()
        assert decided == count  # the chunk cut off was decided again, not kept twice
    finally:
        if restarted is not None:
            restarted.stop()
