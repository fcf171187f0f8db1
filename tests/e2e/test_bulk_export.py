"""Bulk export against a real server process: ``Group/{id}/$davinci-data-export`` of a
MatchedMembers Group and ``Patient/$export``: only the matched members' data, consent
decided again when the job runs (a member revoked since the match is left out and named
in the error file), nothing sensitive under a ``regular`` consent (the shared resources
reached by reference included), and the bad input Bulk Data and PDex name."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from payerbridge.security.model import MEMBER_MATCH_SCOPE, OPERATOR_SCOPE
from tests.builders import (
    RXNORM,
    WITHHELD_UNDER_REGULAR,
    a_coverage,
    a_member_bundle,
    a_member_reaching_sensitive_shared_data,
    a_patient,
)
from tests.e2e.test_metrics import scrape, total
from tests.servers import REQUESTER_SCOPES, ServerProcess

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {**FHIR, "Prefer": "respond-async"}
PAYER_TO_PAYER = "hl7.fhir.us.davinci-pdex#payertopayer"


def luis() -> list[dict[str, Any]]:
    patient = a_patient(
        "luis", given="Luis", family="Ortega", birth_date="1975-07-21", gender="male",
        member_id="M456",
    )  # fmt: skip
    condition = {
        "resourceType": "Condition",
        "id": "luis-asthma",
        "subject": {"reference": "Patient/luis"},
        "code": {"text": "asthma"},
    }
    return [
        patient,
        a_coverage("luis-cov", patient="luis", member_id="M456", subscriber_id="M456"),
        condition,
    ]


def noor() -> list[dict[str, Any]]:
    patient = a_patient(
        "noor", given="Noor", family="Haddad", birth_date="1991-11-30", member_id="M789"
    )
    return [patient, a_coverage("noor-cov", patient="noor", member_id="M789", subscriber_id="M789")]


@pytest.fixture
def old_payer(server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    resources = [*a_member_reaching_sensitive_shared_data("p1").values(), *luis(), *noor()]
    data = tmp_path / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    payer = server("old", env={"PAYERBRIDGE_ORG_NPI": OLD_NPI}, import_files=[data])
    return payer.authorize("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)


@pytest.fixture
def client(old_payer: ServerProcess) -> Iterator[httpx.Client]:
    with old_payer.client() as requester:
        yield requester


def members() -> dict[str, Any]:
    """Ana (p1, consent regular: her sensitive records must not go), Luis (consent
    sensitive), Noor (a consent we cannot honour) and a stranger."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            a_member_bundle(
                "sub-ana",
                "Ana",
                "Garcia",
                "1980-02-03",
                "female",
                "M123",
                subscriber_id="S1",
                policy="regular",
            ),  # fmt: skip
            a_member_bundle("sub-luis", "Luis", "Ortega", "1975-07-21", "male", "M456"),
            a_member_bundle(
                "sub-noor",
                "Noor",
                "Haddad",
                "1991-11-30",
                "female",
                "M789",
                policy_uri="http://example.org/policy/unheard-of",
            ),  # fmt: skip
            a_member_bundle("sub-zora", "Zora", "Quinlan", "1961-12-30", "female", "Z999"),
        ],
    }


def finished(client: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    status_url = answer.headers["Content-Location"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        polled = client.get(status_url)
        if polled.status_code == 200:
            # Until when the files can be fetched, as an HTTP date in the future.
            expires = parsedate_to_datetime(polled.headers["Expires"])
            assert expires > datetime.now(UTC), polled.headers["Expires"]
            return dict(polled.json())
        assert polled.status_code == 202, polled.text
        time.sleep(0.2)
    raise AssertionError("the job did not complete in time")


def files(client: httpx.Client, listed: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in listed:
        answer = client.get(entry["url"], headers={"Accept": "application/fhir+ndjson"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in answer.content.splitlines() if line]
        assert {r["resourceType"] for r in lines} <= {entry["type"]}
        found[entry["type"]] = lines
    return found


def matched_group(client: httpx.Client) -> dict[str, Any]:
    manifest = finished(
        client, client.post("/fhir/Group/$bulk-member-match", json=members(), headers=ASYNC)
    )
    [group_file] = manifest["output"]
    answer = client.get(group_file["url"])
    matched = orjson.loads(answer.content.splitlines()[0])
    assert sorted(m["entity"]["reference"] for m in matched["member"]) == [
        "Patient/luis",
        "Patient/p1",
    ]
    return dict(matched)


def revoke_disclosure(old_payer: ServerProcess, member: str) -> None:
    """The member withdraws the consent its new plan presented (the operator records it)."""
    token = old_payer.register_client("ops", scope=OPERATOR_SCOPE)
    with old_payer.client_with(token) as operator:
        listed = operator.get("/consents", params={"member_id": member}).json()
        [consent] = [c for c in listed if c["role"] == "disclose"]
        assert operator.post(f"/consents/{consent['id']}/$revoke").status_code == 200


def test_the_export_gives_the_consenting_matched_members_data_only(
    old_payer: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    group = matched_group(client)
    revoke_disclosure(old_payer, "luis")
    kick_off = client.post(
        f"/fhir/Group/{group['id']}/$davinci-data-export",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "exportType", "valueCanonical": PAYER_TO_PAYER}],
        },
        headers=ASYNC,
    )
    manifest = finished(client, kick_off)
    assert manifest["requiresAccessToken"] is True
    exported = files(client, manifest["output"])
    everything = [r for lines in exported.values() for r in lines]
    refs = {f"{r['resourceType']}/{r['id']}" for r in everything}
    # Ana's record as a regular consent lets it go; nothing of Luis, Noor or anyone else.
    expected = set(a_member_reaching_sensitive_shared_data("p1")) - WITHHELD_UNDER_REGULAR
    ours = {r for r in refs if not r.startswith("Provenance/")}
    assert ours == {r for r in expected if not r.startswith("Provenance/")}
    assert not refs & WITHHELD_UNDER_REGULAR
    text = orjson.dumps(everything).decode()
    assert "luis" not in text and "noor" not in text
    for withheld in WITHHELD_UNDER_REGULAR:  # not even as a reference
        assert f'"{withheld}"' not in text
    # Our transmitter Provenance names what went.
    transmitter = [p for p in exported["Provenance"] if f"Provenance/{p['id']}" not in expected]
    assert len(transmitter) == 1
    assert {t["reference"] for t in transmitter[0]["target"]} == {
        r for r in ours if not r.startswith("Provenance/")
    }
    # ... as of the export's transactionTime, with the lastUpdated of what we author.
    assert transmitter[0]["recorded"] == manifest["transactionTime"]
    assert transmitter[0]["meta"]["lastUpdated"] == manifest["transactionTime"]
    assert {f["type"]: f["count"] for f in manifest["output"]}["Patient"] == 1
    # Luis's consent was revoked after the match: left out, and named.
    [error_file] = manifest["error"]
    [outcome] = files(client, [error_file])["OperationOutcome"]
    assert outcome["issue"][0]["details"]["text"] == "Patient/luis was not exported"
    # The export's disclosures are counted once it completes: Ana's, and what hers withheld.
    samples, _ = scrape(old_payer)
    key = {"operation": "group-export", "policy": "regular"}
    assert total(samples, "payerbridge_disclosures_total", **key) == 1
    withheld = total(samples, "payerbridge_disclosure_withheld_resources_total", **key)
    assert withheld == len(WITHHELD_UNDER_REGULAR)

    # Downloaded again after the job: what has not changed goes as written; a resource
    # changed since goes as it is now, and not at all if it has become sensitive.
    changed_since(old_payer, tmp_path)
    again = files(client, manifest["output"])
    assert again["Patient"] == exported["Patient"]
    [coverage] = again["Coverage"]
    assert (coverage["status"], coverage["meta"]["versionId"]) == ("cancelled", "2")
    assert {r["id"] for r in exported["MedicationRequest"]} == {"p1-bp-order"}
    assert again["MedicationRequest"] == []  # listed with its count as written, now empty

    # The patient-level export: the members whose consent names this client now.
    patients = finished(client, client.get("/fhir/Patient/$export", headers=ASYNC))
    patient_refs = {
        f"Patient/{r['id']}" for r in files(client, patients["output"]).get("Patient", [])
    }
    assert patient_refs == {"Patient/p1"}

    # _type and _since narrow the export.
    narrowed = finished(
        client,
        client.post(
            f"/fhir/Group/{group['id']}/$davinci-data-export"
            "?_type=Coverage&_since=2000-01-01T00:00:00Z",
            headers=ASYNC,
        ),
    )
    assert sorted(f["type"] for f in narrowed["output"]) == ["Coverage", "Patient", "Provenance"]

    # Bulk Data's Group/[id]/$export: the same Group and job, every type by default ...
    pdex = finished(
        client, client.get(f"/fhir/Group/{group['id']}/$davinci-data-export", headers=ASYNC)
    )
    bulk = finished(client, client.get(f"/fhir/Group/{group['id']}/$export", headers=ASYNC))
    assert {f["type"]: f["count"] for f in bulk["output"]} == {
        f["type"]: f["count"] for f in pdex["output"]
    }
    assert bulk["request"].endswith(f"/fhir/Group/{group['id']}/$export")
    # ... but _type names every type that goes, the Patient and Provenance too.
    only = finished(
        client,
        client.get(
            f"/fhir/Group/{group['id']}/$export",
            params={"_type": "Coverage,ExplanationOfBenefit"},
            headers=ASYNC,
        ),
    )
    assert sorted(f["type"] for f in only["output"]) == ["Coverage"]
    with_provenance = finished(
        client,
        client.get("/fhir/Patient/$export", params={"_type": "Coverage,Provenance"}, headers=ASYNC),
    )
    assert sorted(f["type"] for f in with_provenance["output"]) == ["Coverage", "Provenance"]


def changed_since(old_payer: ServerProcess, tmp_path: Path) -> None:
    """Ana's coverage is cancelled, and her blood-pressure order is recorded again as the
    HIV antiretroviral it turned out to be (the old payer imports both)."""
    shared = a_member_reaching_sensitive_shared_data("p1")
    coverage = {**shared["Coverage/p1-cov"], "status": "cancelled"}
    order = dict(shared["MedicationRequest/p1-bp-order"])
    del order["medicationReference"]
    order["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": "1999667"}]}
    changes = tmp_path / "changes.ndjson"
    changes.write_bytes(b"\n".join(orjson.dumps(r) for r in (coverage, order)))
    imported = old_payer.cli("import", str(changes))
    assert imported.returncode == 0, imported.stderr


def outcome(answer: httpx.Response, status: int) -> list[str]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert all(issue["details"]["text"] for issue in body["issue"])
    return [issue["code"] for issue in body["issue"]]


def test_bad_exports_are_refused_saying_why(old_payer: ServerProcess, client: httpx.Client) -> None:
    group = matched_group(client)
    url = f"/fhir/Group/{group['id']}/$davinci-data-export"
    assert outcome(client.post(url, headers=FHIR), 400) == ["required"]  # no Prefer
    wrong_type = client.post(
        f"{url}?exportType=hl7.fhir.us.davinci-pdex%23provider-download", headers=ASYNC
    )
    assert outcome(wrong_type, 400) == ["not-supported"]
    assert PAYER_TO_PAYER in wrong_type.text
    type_filter = client.post(f"{url}?_typeFilter=Condition%3Fcategory%3Dx", headers=ASYNC)
    assert outcome(type_filter, 400) == ["not-supported"]
    assert "_typeFilter" in type_filter.text
    assert outcome(client.post(f"{url}?_since=yesterday", headers=ASYNC), 400) == ["invalid"]
    assert outcome(client.post(f"{url}?_type=Spaceship", headers=ASYNC), 400) == ["not-supported"]
    stranger = client.post(f"{url}?patient=Patient/noor", headers=ASYNC)
    assert outcome(stranger, 400) == ["not-found"]
    unknown = client.post("/fhir/Group/no-such-group/$davinci-data-export", headers=ASYNC)
    assert outcome(unknown, 404) == ["not-found"]
    token = old_payer.register_client("otherplan", npi="1003000126", scope=REQUESTER_SCOPES)
    with old_payer.client_with(token) as other:
        assert outcome(other.post(url, headers=ASYNC), 404) == ["not-found"]
    # The NonMatched Group holds submitted Patients, not ours: it cannot be exported.
    found = client.get("/fhir/Group", params={"code": "nomatch"}).json()
    not_matched = found["entry"][0]["resource"]["id"]
    refused = client.post(f"/fhir/Group/{not_matched}/$davinci-data-export", headers=ASYNC)
    assert outcome(refused, 422) == ["business-rule"]


def test_exports_hold_the_types_the_token_grants_each_resource_once(
    old_payer: ServerProcess, client: httpx.Client
) -> None:
    group = matched_group(client)  # Ana and Luis: both reach the payer, Organization/org1
    whole = finished(client, client.get(f"/fhir/Group/{group['id']}/$export", headers=ASYNC))
    exported = files(client, whole["output"])
    for listed in whole["output"]:  # each resource once; the counts are what was sent
        lines = exported[listed["type"]]
        assert listed["count"] == len(lines)
        assert len({r["id"] for r in lines}) == len(lines), listed["type"]
    assert "org1" in {r["id"] for r in exported["Organization"]}
    # Every Provenance of ours names only what went.
    sent = {f"{t}/{r['id']}" for t, lines in exported.items() for r in lines}
    for provenance in exported["Provenance"]:
        assert {t["reference"] for t in provenance["target"]} <= sent

    # SMART v2 and v1 scopes per type: exactly those types, the rest named, not a 403.
    for scope in (
        "system/Patient.rs system/Coverage.rs",
        "system/Patient.read system/Coverage.read",
    ):
        token = old_payer.register_client("newplan", npi=NEW_NPI, scope=scope)
        with old_payer.client_with(token) as narrow:
            for url in (
                f"/fhir/Group/{group['id']}/$export",
                f"/fhir/Group/{group['id']}/$davinci-data-export",
            ):
                kick_off = narrow.get(url, headers=ASYNC)
                warned = [i for i in kick_off.json()["issue"] if i["severity"] == "warning"]
                assert [i["code"] for i in warned] == ["forbidden"], kick_off.text
                manifest = finished(narrow, kick_off)
                assert sorted(f["type"] for f in manifest["output"]) == ["Coverage", "Patient"]
                [error_file] = manifest["error"]
                [notice] = files(narrow, [error_file])["OperationOutcome"]
                assert "ExplanationOfBenefit" in notice["issue"][0]["details"]["text"]
                assert notice["issue"][0]["severity"] == "warning"
            # A type asked for and not granted is left out and named, the rest goes.
            asked = narrow.get(
                "/fhir/Patient/$export", params={"_type": "Coverage,Condition"}, headers=ASYNC
            )
            manifest = finished(narrow, asked)
            assert [f["type"] for f in manifest["output"]] == ["Coverage"]
            assert "Condition" in asked.text
    # A token that grants no type to export, or none of those asked, is refused, saying why.
    for scope, url in (
        (MEMBER_MATCH_SCOPE, "/fhir/$export"),
        ("system/Group.rs", f"/fhir/Group/{group['id']}/$export"),
        ("system/Coverage.rs", "/fhir/Patient/$export?_type=Condition"),
    ):
        token = old_payer.register_client("newplan", npi=NEW_NPI, scope=scope)
        with old_payer.client_with(token) as refused:
            answer = refused.get(url, headers=ASYNC)
            assert outcome(answer, 403) == ["forbidden"], scope
            assert "system/" in answer.text
    # The log names the operation by its template, as the rate limits count it.
    assert '"path":"/fhir/Group/{group_id}/$export"' in old_payer.log().replace(" ", "")


def test_system_export_and_lenient_handling(client: httpx.Client) -> None:
    matched_group(client)
    # The system-level export: everything this client may have, the members whose
    # consent names it, as Patient/$export gives them.
    system = finished(client, client.get("/fhir/$export", headers=ASYNC))
    patient = finished(client, client.get("/fhir/Patient/$export", headers=ASYNC))
    assert {f["type"]: f["count"] for f in system["output"]} == {
        f["type"]: f["count"] for f in patient["output"]
    }
    assert system["request"].endswith("/fhir/$export")
    [declared] = client.get("/fhir/metadata").json()["rest"][0]["operation"]
    assert declared["definition"] == "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
    assert outcome(client.get("/fhir/$export?patient=Patient/p1", headers=ASYNC), 400) == [
        "not-supported"
    ]
    # Optional parameters we do not support: refused, unless the client prefers lenient
    # handling; then left out and named at kick-off and in the error file.
    asked = (
        "/fhir/Patient/$export?_elements=id&includeAssociatedData=LatestProvenanceResources"
        "&_type=Coverage,Spaceship"
    )
    assert outcome(client.get(asked, headers=ASYNC), 400) == ["not-supported"] * 3
    lenient = client.get(asked, headers={**ASYNC, "Prefer": "respond-async, handling=lenient"})
    warned = {i["expression"][0] for i in lenient.json()["issue"] if i["severity"] == "warning"}
    assert warned == {"_elements", "includeAssociatedData", "_type"}
    manifest = finished(client, lenient)
    assert [f["type"] for f in manifest["output"]] == ["Coverage"]
    [notices] = files(client, manifest["error"])["OperationOutcome"]
    assert len(notices["issue"]) == 3
    # _typeFilter is refused even then: going on without it would send more than asked.
    filtered = "/fhir/Patient/$export?_typeFilter=Coverage%3Fstatus%3Dactive"
    lenient_filter = client.get(
        filtered, headers={**ASYNC, "Prefer": "respond-async, handling=lenient"}
    )
    assert outcome(lenient_filter, 400) == ["not-supported"]
