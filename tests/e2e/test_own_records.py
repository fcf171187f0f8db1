"""The plan reads its own members' records (issue 70, ADR 0052): after an exchange, a
client of the plan's own organization reads, searches and pages ``$everything`` over
what it received, whole and labelled, with no HRex consent; a client of another
organization with the same scopes is refused as before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.consent.labels import CONFIDENTIALITY
from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.release import release
from payerbridge.disclosure.scope import WholeRecord
from payerbridge.fhir.codes import V2_0203
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
        released = release(compartment, platform.members, policy, scope=WholeRecord(labels=False))
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


def _exported(client: Any, path: str, held: dict[str, Any]) -> list[dict[str, Any]]:
    """What an export kicked off at ``path`` gave of the records the plan holds (the
    transmitter Provenance of the export is ours, not a record we hold)."""
    manifest = finished(client, client.get(path, headers=ASYNC))
    exported = [r for lines in files(client, manifest["output"]).values() for r in lines]
    return [r for r in exported if f"{r['resourceType']}/{r['id']}" in held]


def test_the_plans_own_bulk_export_holds_every_member_it_received_records_for(
    exchanged: dict[str, Any],
) -> None:
    new, exchange = exchanged["new"], exchanged["exchange"]
    patient_id = exchange["imported_patient_id"]
    held = _held(new, patient_id, ConsentPolicy.SENSITIVE)
    with new.client_with(exchanged["own"]) as client:
        kept = _exported(client, "/fhir/Patient/$export", held)
    assert _keys(kept) == set(held) and len(kept) == len(held)
    assert all(_confidentiality(r) in (["N"], ["R"], ["V"]) for r in kept)
    with new.client_with(exchanged["other"]) as client:
        theirs = finished(client, client.get("/fhir/Patient/$export", headers=ASYNC))
    assert not [f for f in theirs["output"] if f["type"] == "Patient"]  # no consent: nobody


def test_the_plans_group_of_received_members_is_read_and_exported_by_it_alone(
    exchanged: dict[str, Any],
) -> None:
    new, exchange = exchanged["new"], exchanged["exchange"]
    patient_id = exchange["imported_patient_id"]
    held = _held(new, patient_id, ConsentPolicy.SENSITIVE)
    with new.client_with(exchanged["own"]) as client:
        group = client.get("/fhir/Group/received")
        assert group.status_code == 200, group.text
        members = [m["entity"]["reference"] for m in group.json()["member"]]
        assert members == [f"Patient/{patient_id}"] and group.json()["quantity"] == 1
        kept = _exported(client, "/fhir/Group/received/$export", held)
        stranger = client.get("/fhir/Group/received/$export?patient=Patient/nobody", headers=ASYNC)
        assert stranger.status_code == 400, stranger.text
        assert "not a member of Group/received" in stranger.text
    assert _keys(kept) == set(held) and len(kept) == len(held)
    # To another organization the Group does not exist: which members the plan received
    # records for is its own business.
    with new.client_with(exchanged["other"]) as client:
        for path in ("/fhir/Group/received", "/fhir/Group/received/$export"):
            refused = client.get(path, headers=ASYNC)
            assert refused.status_code == 404, (path, refused.text)
    with new.platform() as platform:
        events = platform.audit.for_entity("Group", "received")
    assert [e["actor"] for e in events] == ["plan-systems"]  # the refused read is no read
    assert events[0]["action"] == "received.read" and events[0]["detail"] == {
        "purpose": "HOPERAT",
        "basis": "own-organization",
        "members": 1,
    }


SECOND_NPI = "1679576722"


def _second_old_payer(
    module_server: Callable[..., ServerProcess],
    network: Path,
    new: ServerProcess,
    switcher: dict[str, Any],
    tmp_path: Path,
) -> ServerProcess:
    """Another old payer that covered the same member, whose address and phone for her
    are not the first one's: a partner of the new payer, which it trusts."""
    info = orjson.loads((network / "network.json").read_bytes())
    lines = (network / info["payers"][0]["file"]).read_bytes().splitlines()
    moved = []
    for line in lines:
        resource = orjson.loads(line)
        if resource["resourceType"] == "Patient" and resource["id"] == switcher["old_patient_id"]:
            resource["address"] = [{"line": ["1 Elm St"], "city": "Akron", "state": "OH"}]
            resource["telecom"] = [{"system": "phone", "value": "330-555-0101"}]
        moved.append(orjson.dumps(resource))
    (tmp_path / "second.ndjson").write_bytes(b"\n".join(moved))
    second = module_server(
        "second",
        env={"PAYERBRIDGE_ORG_NAME": "Second Old Plan", "PAYERBRIDGE_ORG_NPI": SECOND_NPI},
        import_files=[tmp_path / "second.ndjson"],
    )
    second.trust(new, "platform", npi=info["platform"]["npi"])
    with new.client() as client:
        partner = {
            "id": "second-plan",
            "name": "Second Old Plan",
            "npi": SECOND_NPI,
            "base_url": second.fhir_base,
            "client_id": "platform",
        }
        assert client.post("/partners", json=partner).status_code == 201
    return second


def _plans_own_record(new: ServerProcess, request: dict[str, Any], tmp_path: Path) -> None:
    """What the plan already held for the member: her Patient (the member id on her new
    card, typed MB) and her Coverage, loaded as the plan loads its own data."""
    member = request["member"]
    patient = {
        "resourceType": "Patient",
        "id": "plan-m1",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MB"}]},
                "system": "https://plan.example/member-id",
                "value": request["new_coverage"]["member_id"],
            }
        ],
        "name": [{"family": member["family"], "given": member["given"]}],
        "birthDate": member["birth_date"],
        "gender": member["gender"],
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "plan-cov-m1",
        "identifier": [{"system": "https://plan.example/coverage", "value": "C-M1"}],
        "status": "active",
        "beneficiary": {"reference": "Patient/plan-m1"},
        "payor": [{"display": "the plan"}],
    }
    path = tmp_path / "plan.ndjson"
    path.write_bytes(orjson.dumps(patient) + b"\n" + orjson.dumps(coverage))
    with new.platform() as platform:
        platform.import_member_files([path], progress=lambda _path, _size: None)


def test_a_member_from_two_old_payers_the_plan_held_is_one_patient_with_every_source(
    exchanged: dict[str, Any],
    module_server: Callable[..., ServerProcess],
    network: Path,
    tmp_path: Path,
) -> None:
    """ADR 0054: both old payers' records land under the plan's own Patient for the
    member; each old payer's Patient is kept, linked to it; what they say differently
    about her is recorded, and her $everything holds all three sources."""
    new, info = exchanged["new"], orjson.loads((network / "network.json").read_bytes())
    switcher = switcher_to(network, 1)
    second = _second_old_payer(module_server, network, new, switcher, tmp_path)
    _plans_own_record(new, switcher["request"], tmp_path)
    with new.client() as client:
        first = wait_terminal(client, submit(client, switcher["request"]))
        request = {**switcher["request"], "old_payer": "second-plan"}
        then = wait_terminal(client, submit(client, request))
    assert (first["state"], then["state"]) == ("completed", "completed"), then["completeness"]
    for exchange in (first, then):
        assert exchange["imported_patient_id"] == "plan-m1"
        chosen = exchange["completeness"]["member_patient"]
        assert chosen == {"patient": "Patient/plan-m1", "how": "plan"}
    # A new address and phone is what moving means: recorded, by source, not a conflict.
    differences = {d["field"]: d for d in then["completeness"]["differences"]}
    assert {"address", "telecom"} <= set(differences)
    assert {"payer-a", "second-plan"} <= set(differences["address"]["sources"])
    assert not any(d["identity"] for d in differences.values())
    assert "Akron" not in orjson.dumps(then).decode()  # names fields, never values

    everything = _everything(new, exchanged["own"], "plan-m1")
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in everything}
    assert {"Patient/plan-m1", "Coverage/plan-cov-m1"} <= set(by_key)
    patients = [r for r in everything if r["resourceType"] == "Patient"]
    assert len(patients) == 3  # the plan's, and each old payer's kept as its source
    linked = [p for p in patients if p["id"] != "plan-m1"]
    assert all(
        p["link"] == [{"other": {"reference": "Patient/plan-m1"}, "type": "seealso"}]
        for p in linked
    )
    assert "link" not in by_key["Patient/plan-m1"]  # the plan's own Patient is untouched
    old_base = exchanged["old"].fhir_base
    for exchange, base in ((first, old_base), (then, second.fhir_base)):
        sent = [r for r in everything if (r.get("meta") or {}).get("source", "").startswith(base)]
        # All but our receipt Provenance carry where the old payer kept them.
        assert len(sent) == exchange["resource_count"] - 1, base
    receipts = [
        r
        for r in everything
        if r["resourceType"] == "Provenance"
        and any(a["type"]["coding"][0]["code"] == "custodian" for a in r.get("agent", []))
    ]
    assert (
        len({tuple(sorted(a["who"]["identifier"]["value"] for a in r["agent"])) for r in receipts})
        == 2
    )
    assert {info["payers"][0]["npi"], SECOND_NPI} <= {
        a["who"]["identifier"]["value"] for r in receipts for a in r["agent"]
    }
    # Everything else of the member points to the one Patient.
    subjects = {
        (r.get("patient") or r.get("subject") or r.get("beneficiary") or {}).get("reference")
        for r in everything
        if r["resourceType"] in ("ExplanationOfBenefit", "Coverage", "Condition")
    }
    assert subjects == {"Patient/plan-m1"}
    with new.client_with(exchanged["other"]) as client:
        assert client.get("/fhir/Patient/plan-m1/$everything").status_code == 403
