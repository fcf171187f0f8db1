"""The leak test, over HTTP against a real old-payer process: a member whose records
reach sensitive shared resources (an antiretroviral by medicationReference, a 42 CFR
Part 2 program by a claim's provider). One requesting payer holds a ``regular`` consent,
another a ``sensitive`` one, for the same member. Under ``regular`` nothing sensitive
leaves by any path (``$everything``, read, search), by reference or include, and nothing
that leaves points at what was withheld; under ``sensitive`` all of it leaves, with our
Provenance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.fhir.resources import iter_references
from tests.builders import (
    WITHHELD_UNDER_REGULAR,
    a_member_reaching_sensitive_shared_data,
    member_match_parameters,
)
from tests.servers import REQUESTER_SCOPES, ServerProcess

OLD_NPI = "1245319599"
REGULAR_NPI, SENSITIVE_NPI = "1234567893", "1200000101"
FHIR = {"Content-Type": "application/fhir+json"}
DATA = a_member_reaching_sensitive_shared_data()


@pytest.fixture
def old(server: Callable[..., ServerProcess], tmp_path: Path) -> dict[str, Any]:
    """The old payer with the member's data, and one client per consent, each having
    presented its consent with $member-match."""
    data = tmp_path / "old.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in DATA.values()))
    payer = server(
        "old",
        env={"PAYERBRIDGE_ORG_NAME": "Old Plan", "PAYERBRIDGE_ORG_NPI": OLD_NPI},
        import_files=[data],
    )
    clients = {}
    for policy, npi in (("regular", REGULAR_NPI), ("sensitive", SENSITIVE_NPI)):
        token = payer.register_client(f"{policy}-payer", npi=npi, scope=REQUESTER_SCOPES)
        with payer.client_with(token) as client:
            matched = client.post(
                "/fhir/Patient/$member-match",
                json=member_match_parameters(our_npi=npi, partner_npi=OLD_NPI, policy=policy),
                headers=FHIR,
            )
            assert matched.status_code == 200, matched.text
        clients[policy] = token
    return {"payer": payer, **clients}


def keys(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def test_everything_under_regular_leaves_nothing_sensitive_behind_any_reference(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["regular"]) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    resources = [e["resource"] for e in bundle["entry"]]
    shared = [r for r in resources if r["resourceType"] != "Provenance"]
    assert keys(shared) == set(DATA) - WITHHELD_UNDER_REGULAR
    for resource in resources:
        assert not set(iter_references(resource)) & WITHHELD_UNDER_REGULAR, resource
    assert bundle["total"] == 4  # Patient, Coverage, the blood-pressure order, the checkup


def test_everything_under_sensitive_gives_it_all_with_our_provenance(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["sensitive"]) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    resources = [e["resource"] for e in bundle["entry"]]
    released = [r for r in resources if r["resourceType"] != "Provenance"]
    assert keys(released) == set(DATA)
    [provenance] = [r for r in resources if r["resourceType"] == "Provenance"]
    targets = {t["reference"] for t in provenance["target"]}
    assert targets == set(DATA)  # the shared resources too


def test_a_withheld_resource_reads_as_absent_under_regular(old: dict[str, Any]) -> None:
    payer: ServerProcess = old["payer"]
    directory = {"Organization/arv-maker", "Practitioner/hiv-specialist"}
    with payer.client_with(old["regular"]) as client:
        for ref in sorted(WITHHELD_UNDER_REGULAR - directory):
            response = client.get(f"/fhir/{ref}")
            assert response.status_code == 404, (ref, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"
        # Directory entries that say nothing by themselves: a registered payer may read
        # them; they just never come with this member's records.
        for ref in sorted(directory):
            assert client.get(f"/fhir/{ref}").status_code == 200


def test_reads_and_searches_under_regular_strip_links_to_what_is_withheld(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["regular"]) as client:
        patient = client.get("/fhir/Patient/p1").json()
        found = client.get("/fhir/Patient", params={"identifier": "M123"}).json()
        order = client.get("/fhir/MedicationRequest/p1-bp-order")
    assert "managingOrganization" not in patient
    assert [e["resource"] for e in found["entry"]] == [patient]
    assert order.status_code == 200
    with payer.client_with(old["sensitive"]) as client:
        assert client.get("/fhir/MedicationRequest/p1-arv-order").status_code == 200
        patient = client.get("/fhir/Patient/p1").json()
    assert patient["managingOrganization"] == {"reference": "Organization/part2-program"}
