"""The FHIR surface as a partner sees it: CapabilityStatement, reads, $everything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from tests.builders import a_coverage, a_patient, member_match_parameters
from tests.servers import REQUESTER_SCOPES, ServerProcess


def test_metadata_declares_exactly_what_is_implemented(
    server: Callable[..., ServerProcess],
) -> None:
    payer = server("payer", env={"PAYERBRIDGE_ORG_NAME": "Old Plan"})
    with payer.client() as client:
        response = client.get("/fhir/metadata")
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert statement["fhirVersion"] == "4.0.1" and statement["publisher"] == "Old Plan"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    operations = {o["name"]: o["definition"] for o in resources["Patient"]["operation"]}
    assert operations == {
        "member-match": "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match",
        "everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        "export": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
    }
    assert {p["name"] for p in resources["Patient"]["searchParam"]} == {"identifier", "_id"}
    coverage = resources["Coverage"]
    assert [i["code"] for i in coverage["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in coverage["searchParam"]} == {
        "beneficiary",
        "patient",
        "status",
        "_count",
    }
    assert coverage["searchRevInclude"] == ["Provenance:target"]
    assert [i["code"] for i in resources["Organization"]["interaction"]] == ["read"]
    group = resources["Group"]
    assert {o["name"]: o["definition"] for o in group["operation"]} == {
        "bulk-member-match": "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch",
        "provider-member-match": "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/ProviderMemberMatch",
        "davinci-data-export": "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/davinci-data-export",
        "export": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    }
    # A Bulk Data server: its clients and the IG's test kit look for this before exporting.
    assert statement["instantiates"] == [
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data|2.0.0",
        "http://hl7.org/fhir/us/davinci-pdex/CapabilityStatement/pdex-provider-access-server",
    ]
    assert [i["code"] for i in group["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in group["searchParam"]} == {
        "identifier",
        "characteristic",
        "characteristic-value-reference",
        "code",
    }


def test_read_and_everything_return_versioned_resources_with_a_transmitter_provenance(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "m.ndjson"
    organization = {"resourceType": "Organization", "id": "org1", "name": "Old Plan"}
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in (organization, a_patient(), a_coverage())))
    payer = server("payer", env={"PAYERBRIDGE_ORG_NPI": "1245319599"}, import_files=[data])
    payer.authorize("newplan", npi="1234567893", scope=REQUESTER_SCOPES)
    with payer.client() as client:
        before = client.get("/fhir/Coverage/c1")
        # The member's consent comes with $member-match; from then on the data can be read.
        matched = client.post("/fhir/Patient/$member-match", json=member_match_parameters())
        assert matched.status_code == 200, matched.text
        coverage = client.get("/fhir/Coverage/c1").json()
        organization_read = client.get("/fhir/Organization/org1")
        bundle = client.get("/fhir/Patient/p1/$everything").json()
        missing = client.get("/fhir/Patient/nobody/$everything")
    with payer.anonymous() as client:
        anonymous = client.get("/fhir/Patient/p1/$everything")
    # Without a consent a read answers as a read of nothing (issue 48).
    assert before.status_code == 404 and "no-consent" not in before.text
    assert anonymous.status_code == 401
    assert organization_read.status_code == 200
    assert coverage["meta"]["versionId"] == "1" and coverage["meta"]["lastUpdated"].endswith("Z")
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes == [
        ("Patient", "match"),
        ("Coverage", "match"),
        ("Organization", "include"),
        ("Provenance", "include"),
    ]
    provenance = bundle["entry"][-1]["resource"]
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "transmitter"
    assert provenance["agent"][0]["who"]["identifier"]["value"] == "1245319599"
    # Every resource that leaves carries it, the shared ones reached by reference too.
    assert {t["reference"] for t in provenance["target"]} == {
        "Patient/p1",
        "Coverage/c1",
        "Organization/org1",
    }
    # Without a consent for it, a member that does not exist looks like any other.
    assert missing.status_code == 403
