"""The plan reads its own members' records (issue 70, ADR 0052): after an exchange, a
client of the plan's own organization reads, searches and pages ``$everything`` over
what it received, whole and labelled, with no HRex consent; a client of another
organization with the same scopes is refused as before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from payerbridge.consent.labels import CONFIDENTIALITY
from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.release import release
from payerbridge_tools.sandbox.generator import write_network
from tests.builders import WITHHELD_UNDER_REGULAR
from tests.e2e.test_bulk_export import ASYNC, files, finished
from tests.e2e.test_disclosure import DATA, OLD_NPI, follow, old_server, stored
from tests.e2e.test_exchange import start_payers, submit, switcher_to, wait_terminal
from tests.servers import ServerProcess

READER_SCOPE = "system/*.rs"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 40, 17, date.today() - timedelta(days=1), switchers=2)
    return out


@pytest.fixture(scope="module")
def exchanged(module_server: Callable[..., ServerProcess], network: Path) -> dict[str, Any]:
    """Both payers, one member moved, and a reader of each organization at each payer."""
    old, new, info = start_payers(module_server, network)
    with new.client() as client:
        exchange = wait_terminal(client, submit(client, switcher_to(network, 0)["request"]))
    assert exchange["state"] == "completed", exchange
    ours, theirs = info["platform"]["npi"], info["payers"][0]["npi"]
    return {
        "old": old,
        "new": new,
        "exchange": exchange,
        "own": new.register_client("plan-systems", npi=ours, scope=READER_SCOPE),
        "other": new.register_client("another-payer", npi=theirs, scope=READER_SCOPE),
    }


def _keys(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def _held(payer: ServerProcess, patient_id: str, policy: ConsentPolicy) -> dict[str, Any]:
    """What the payer holds of the member, released under ``policy`` from its store."""
    with payer.platform() as platform:
        compartment = platform.members.compartment(patient_id)
        released = release(compartment, platform.members, policy)
    return {f"{r['resourceType']}/{r['id']}": r for r in released.resources}


def _confidentiality(resource: dict[str, Any]) -> list[str]:
    labels = (resource.get("meta") or {}).get("security") or []
    return [label["code"] for label in labels if label.get("system") == CONFIDENTIALITY]


def _everything(payer: ServerProcess, token: str, patient_id: str) -> list[dict[str, Any]]:
    with payer.client_with(token) as client:
        pages = follow(client, f"/fhir/Patient/{patient_id}/$everything?_count=7")
    return [
        e["resource"] for page in pages for e in page["entry"] if e["search"]["mode"] != "outcome"
    ]


def test_the_plans_own_client_reads_every_received_resource_and_another_org_is_refused(
    exchanged: dict[str, Any],
) -> None:
    new, exchange = exchanged["new"], exchanged["exchange"]
    patient_id = exchange["imported_patient_id"]
    path = f"/fhir/Patient/{patient_id}/$everything"
    with new.client_with(exchanged["other"]) as client:
        refused = client.get(path)
    assert refused.status_code == 403, refused.text
    assert "consent" in refused.text.lower()

    released = _everything(new, exchanged["own"], patient_id)
    held = _held(new, patient_id, ConsentPolicy.SENSITIVE)
    # Ours too: the transmitter Provenance of each page, not a record we hold.
    ours = [
        r for r in released if f"Provenance/{r['id']}" in held or r["resourceType"] != "Provenance"
    ]
    assert _keys(ours) == set(held)  # every resource received, each once
    assert len(ours) == len(held)
    assert all(_confidentiality(r) in (["N"], ["R"], ["V"]) for r in ours)
    with new.platform() as platform:
        decisions = [
            e
            for e in platform.audit.for_entity("Patient", patient_id)
            if e["action"] == "consent.decision" and e["detail"]["hop"] == "everything"
        ]
    assert {d["outcome"] for d in decisions} == {"permit", "deny"}
    permit = next(d for d in decisions if d["outcome"] == "permit")
    assert (permit["actor"], permit["detail"]["basis"]) == ("plan-systems", "own-organization")
    assert permit["detail"]["purpose"] == "HOPERAT"
    assert permit["detail"]["scope"] == "own-records@1"


def test_searches_and_reads_by_the_plans_own_client_find_what_was_received(
    exchanged: dict[str, Any],
) -> None:
    new, exchange = exchanged["new"], exchanged["exchange"]
    patient_id = exchange["imported_patient_id"]
    held = _held(new, patient_id, ConsentPolicy.SENSITIVE)
    claims = {k for k in held if k.startswith("ExplanationOfBenefit/")}
    assert claims, "the exchanged member has claims"
    with new.client_with(exchanged["own"]) as client:
        search = client.get("/fhir/ExplanationOfBenefit", params={"patient": patient_id})
        read = client.get(f"/fhir/{min(claims)}")
        patient = client.get(f"/fhir/Patient/{patient_id}")
    assert search.status_code == 200, search.text
    found = [e["resource"] for e in search.json()["entry"] if e["search"]["mode"] == "match"]
    assert _keys(found) == claims
    assert read.status_code == 200 and _confidentiality(read.json()) in (["N"], ["R"])
    assert patient.status_code == 200 and patient.json()["id"] == patient_id
    with new.platform() as platform:
        hops = {
            e["detail"]["hop"]
            for e in platform.audit.for_entity("Patient", patient_id)
            if e["action"] == "consent.decision"
            and e["actor"] == "plan-systems"
            and e["detail"].get("basis") == "own-organization"
        }
    assert {"search", "read"} <= hops  # each read audited with its basis
    with new.client_with(exchanged["other"]) as client:
        assert client.get(f"/fhir/{min(claims)}").status_code == 404
        hidden = client.get("/fhir/ExplanationOfBenefit", params={"patient": patient_id})
    assert hidden.status_code == 403


def test_what_a_regular_consent_would_withhold_is_labelled_restricted_not_withheld(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A member whose records reach sensitive care (a Part 2 program, an antiretroviral,
    what refers to them): the plan's own client gets the whole record, and exactly what
    a regular consent would withhold carries ``R``."""
    old = old_server(module_server, tmp_path_factory.mktemp("sensitive"))
    token = old.register_client("old-plan-systems", npi=OLD_NPI, scope=READER_SCOPE)
    released = _everything(old, token, "p1")
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in stored(released)}
    assert set(by_key) == set(DATA)  # nothing withheld from the plan itself
    restricted = {k for k, r in by_key.items() if _confidentiality(r) == ["R"]}
    assert restricted == WITHHELD_UNDER_REGULAR
    assert all(_confidentiality(by_key[k]) == ["N"] for k in set(DATA) - restricted)
    # Read one by one, as they went with the record.
    with old.client_with(token) as client:
        for key in ("Organization/part2-program", "MedicationRequest/p1-arv-order", "Patient/p1"):
            read = client.get(f"/fhir/{key}")
            assert read.status_code == 200, read.text
            assert _confidentiality(read.json()) == _confidentiality(by_key[key]), key


def test_the_plans_own_bulk_export_holds_every_member_it_received_records_for(
    exchanged: dict[str, Any],
) -> None:
    new, exchange = exchanged["new"], exchanged["exchange"]
    patient_id = exchange["imported_patient_id"]
    held = _held(new, patient_id, ConsentPolicy.SENSITIVE)
    with new.client_with(exchanged["own"]) as client:
        manifest = finished(client, client.get("/fhir/Patient/$export", headers=ASYNC))
        exported = [r for lines in files(client, manifest["output"]).values() for r in lines]
    # The transmitter Provenance of the export is ours, not a record we hold.
    kept = [r for r in exported if f"{r['resourceType']}/{r['id']}" in held]
    assert _keys(kept) == set(held) and len(kept) == len(held)
    assert all(_confidentiality(r) in (["N"], ["R"], ["V"]) for r in kept)
    with new.client_with(exchanged["other"]) as client:
        theirs = finished(client, client.get("/fhir/Patient/$export", headers=ASYNC))
    assert not [f for f in theirs["output"] if f["type"] == "Patient"]  # no consent: nobody
