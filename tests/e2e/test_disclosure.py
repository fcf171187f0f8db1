"""The leak test, over HTTP against a real old-payer process: a member whose records
reach sensitive shared resources (an antiretroviral by medicationReference, a 42 CFR
Part 2 program by a claim's provider). One requesting payer holds a ``regular`` consent,
another a ``sensitive`` one, for the same member. Under ``regular`` nothing sensitive
leaves by any path (``$everything``, read, search), by reference or include, and nothing
that leaves points at what was withheld; under ``sensitive`` all of it leaves, with our
Provenance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import update

from payerbridge.consent.categories import RXNORM
from payerbridge.fhir.resources import iter_references
from payerbridge.store.tables import fhir_resources
from tests.builders import (
    WITHHELD_UNDER_REGULAR,
    a_coverage,
    a_member_reaching_sensitive_shared_data,
    a_patient,
    member_match_parameters,
)
from tests.servers import REQUESTER_SCOPES, ServerProcess, run_cli

OLD_NPI = "1245319599"
REGULAR_NPI, SENSITIVE_NPI = "1234567893", "1200000101"
FHIR = {"Content-Type": "application/fhir+json"}
DATA = a_member_reaching_sensitive_shared_data()
PRIOR_AUTH = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"


@pytest.fixture(scope="module")
def shared_old(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """The old payer with the member's data, one server the module's tests share: they
    only read the member's records, each as clients of its own."""
    return old_server(module_server, tmp_path_factory.mktemp("disclosure"))


@pytest.fixture
def old(shared_old: ServerProcess, request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"payer": shared_old, **consenting_clients(shared_old, f"-{request.node.name}")}


def old_payer(
    server: Callable[..., ServerProcess],
    tmp_path: Path,
    records: dict[str, dict[str, Any]] = DATA,
    **env: str,
) -> dict[str, Any]:
    """The old payer with the member's data, and one client per consent, each having
    presented its consent with $member-match."""
    payer = old_server(server, tmp_path, records, **env)
    return {"payer": payer, **consenting_clients(payer)}


def old_server(
    server: Callable[..., ServerProcess],
    tmp_path: Path,
    records: dict[str, dict[str, Any]] = DATA,
    **env: str,
) -> ServerProcess:
    """The old payer with the member's data."""
    data = tmp_path / "old.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in records.values()))
    return server(
        "old",
        env={"PAYERBRIDGE_ORG_NAME": "Old Plan", "PAYERBRIDGE_ORG_NPI": OLD_NPI, **env},
        import_files=[data],
    )


def consenting_clients(payer: ServerProcess, suffix: str = "") -> dict[str, str]:
    """One client per consent (``<policy>-payer<suffix>``), each having presented its
    consent with $member-match: the access token of each, by policy."""
    clients = {}
    for policy, npi in (("regular", REGULAR_NPI), ("sensitive", SENSITIVE_NPI)):
        token = payer.register_client(f"{policy}-payer{suffix}", npi=npi, scope=REQUESTER_SCOPES)
        with payer.client_with(token) as client:
            matched = client.post(
                "/fhir/Patient/$member-match",
                json=member_match_parameters(our_npi=npi, partner_npi=OLD_NPI, policy=policy),
                headers=FHIR,
            )
            assert matched.status_code == 200, matched.text
        clients[policy] = token
    return clients


def keys(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def stored(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without the transmitter Provenance each answer adds (ours, not the member's)."""
    return [r for r in resources if f"{r['resourceType']}/{r['id']}" in DATA]


def test_everything_under_regular_leaves_nothing_sensitive_behind_any_reference(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["regular"]) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    resources = [e["resource"] for e in bundle["entry"]]
    assert keys(stored(resources)) == set(DATA) - WITHHELD_UNDER_REGULAR
    for resource in resources:
        assert not set(iter_references(resource)) & WITHHELD_UNDER_REGULAR, resource
    # Patient, Coverage, the blood-pressure order, the checkup and its Provenance
    assert bundle["total"] == 5


def test_everything_under_sensitive_gives_it_all_with_our_provenance(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["sensitive"]) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    resources = [e["resource"] for e in bundle["entry"]]
    assert keys(stored(resources)) == set(DATA)
    [provenance] = [r for r in resources if keys([r]) - set(DATA)]
    targets = {t["reference"] for t in provenance["target"]}
    assert targets == {k for k in DATA if not k.startswith("Provenance/")}  # shared ones too


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
    assert [e["resource"] for e in found["entry"] if e["search"]["mode"] == "match"] == [patient]
    assert order.status_code == 200
    with payer.client_with(old["sensitive"]) as client:
        assert client.get("/fhir/MedicationRequest/p1-arv-order").status_code == 200
        patient = client.get("/fhir/Patient/p1").json()
    assert patient["managingOrganization"] == {"reference": "Organization/part2-program"}


def test_a_patient_search_carries_our_provenance_and_refuses_what_it_does_not_support(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["sensitive"]) as client:
        found = client.get(
            "/fhir/Patient", params={"_id": "p1", "_revinclude": "Provenance:target"}
        ).json()
        unknown = client.get("/fhir/Patient", params={"identifier": "M123", "name": "Garcia"})
        twice = client.get("/fhir/Patient?identifier=M123&identifier=M124")
        other = client.get(
            "/fhir/Patient", params={"_id": "p1", "_revinclude": "Observation:subject"}
        )
    assert found["total"] == 1
    (ours,) = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert ours["resourceType"] == "Provenance"
    assert ours["target"] == [{"reference": "Patient/p1"}]
    assert ours["agent"][0]["type"]["coding"][0]["code"] == "transmitter"
    for response, named in ((unknown, "name"), (twice, "identifier"), (other, "_revinclude")):
        assert response.status_code == 400, response.text
        issue = response.json()["issue"][0]
        assert issue["expression"] == [named] and named in issue["details"]["text"]


def follow(client: Any, url: str) -> list[dict[str, Any]]:
    """Every page of a $everything answer, by its next links."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        next_url = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
    return pages


def test_paging_under_regular_leaks_nothing_and_gives_each_resource_once(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["regular"]) as client:
        pages = follow(client, "/fhir/Patient/p1/$everything?_count=2")
    assert len(pages) == 5  # 5 records (a Provenance among them), 3 shared, two a page
    released = [e["resource"] for page in pages for e in page["entry"]]
    shared = stored(released)
    assert len(shared) == len(keys(shared))  # none twice
    assert keys(shared) == set(DATA) - WITHHELD_UNDER_REGULAR
    assert shared[0]["resourceType"] == "Patient"
    for resource in released:
        assert not set(iter_references(resource)) & WITHHELD_UNDER_REGULAR, resource
    for page in pages:  # each page with our Provenance for what it carries
        carried = [e["resource"] for e in page["entry"]]
        [provenance] = [r for r in carried if keys([r]) - set(DATA)]
        assert {t["reference"] for t in provenance["target"]} == {
            k for k in keys(carried) if not k.startswith("Provenance/")
        }
        assert page["total"] == 5


def test_everything_filters_by_type_and_time_and_refuses_what_it_does_not_support(
    old: dict[str, Any],
) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["sensitive"]) as client:
        typed = follow(client, "/fhir/Patient/p1/$everything?_type=MedicationRequest,Medication")
        later = follow(client, "/fhir/Patient/p1/$everything?_since=2999-01-01T00:00:00Z")
        for query, named in (
            ("_typeFilter=Observation%3Fcode%3Dx", "_typeFilter"),
            ("_type=Starship", "_type"),
            ("_since=2024-01-01", "_since"),
            ("_count=0", "_count"),
            ("_count=100000", "_count"),
            ("colour=blue", "colour"),
            ("_count=5&_count=6", "_count"),
        ):
            refused = client.get(f"/fhir/Patient/p1/$everything?{query}")
            assert refused.status_code == 400, (query, refused.text)
            [issue] = refused.json()["issue"]
            assert issue["expression"] == [named], (query, issue)
        foreign = client.get("/fhir/Patient/p1/$everything?_page_token=nope&_after=0")
        assert foreign.status_code == 404
    got = [
        e["resource"] for e in typed[0]["entry"] if e["resource"]["resourceType"] != "Provenance"
    ]
    assert {r["resourceType"] for r in got} == {"Patient", "MedicationRequest", "Medication"}
    assert [e["resource"]["resourceType"] for e in later[0]["entry"]] == ["Patient", "Provenance"]
    with payer.client_with(old["regular"]) as other:  # another client's pages are not its own
        first = other.get("/fhir/Patient/p1/$everything?_count=1").json()
        next_url = next(x["url"] for x in first["link"] if x["relation"] == "next")
    with payer.client_with(old["sensitive"]) as client:
        assert client.get(next_url).status_code == 404


def test_searches_under_regular_leave_nothing_sensitive_and_page(old: dict[str, Any]) -> None:
    payer: ServerProcess = old["payer"]
    with payer.client_with(old["regular"]) as client:
        orders = follow(client, "/fhir/MedicationRequest?patient=p1&_revinclude=Provenance:target")
        with_drugs = follow(
            client, "/fhir/MedicationRequest?patient=p1&_include=MedicationRequest:medication"
        )
        bad_include = client.get(
            "/fhir/Encounter", params={"patient": "p1", "_include": "Encounter:participant"}
        )
        claims = client.get("/fhir/ExplanationOfBenefit", params={"patient": "Patient/p1"})
        visits = follow(client, "/fhir/Encounter?patient=p1&_revinclude=Provenance:target")
        coverage = client.get("/fhir/Coverage", params={"beneficiary": "p1", "_count": "1"})
        refused = client.get("/fhir/Encounter", params={"patient": "p1", "reason": "x"})
        nobody = client.get("/fhir/Encounter")
    found = stored([e["resource"] for page in orders for e in page["entry"]])
    assert keys(found) == {"MedicationRequest/p1-bp-order"}  # not the antiretroviral
    included = stored([e["resource"] for page in with_drugs for e in page["entry"]])
    assert keys(included) == {"MedicationRequest/p1-bp-order", "Medication/amlodipine"}
    assert bad_include.status_code == 400
    assert "Encounter:service-provider" in bad_include.json()["issue"][0]["details"]["text"]
    assert claims.status_code == 200 and claims.json()["total"] == 0
    assert keys(stored([e["resource"] for e in visits[0]["entry"]])) == {
        "Encounter/p1-checkup",
        "Provenance/p1-checkup-prov",  # _revinclude
    }
    assert coverage.json()["total"] == 1
    assert refused.status_code == 400 and refused.json()["issue"][0]["expression"] == ["reason"]
    assert nobody.status_code == 400 and nobody.json()["issue"][0]["code"] == "required"
    with payer.client_with(old["sensitive"]) as client:
        everything = follow(client, "/fhir/MedicationRequest?patient=p1&_count=1")
        drugs = follow(
            client, "/fhir/MedicationRequest?patient=p1&_include=MedicationRequest:medication"
        )
        claims = client.get("/fhir/ExplanationOfBenefit", params={"patient": "p1"}).json()
    assert len(everything) == 2 and claims["total"] == 1
    assert {"Medication/arv", "Medication/amlodipine"} <= keys(
        [e["resource"] for page in drugs for e in page["entry"]]
    )
    assert keys(stored([e["resource"] for p in everything for e in p["entry"]])) == {
        "MedicationRequest/p1-bp-order",
        "MedicationRequest/p1-arv-order",
    }


def test_an_operators_code_sets_withhold_more_and_each_decision_names_them(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A plan adds amlodipine to what a regular consent withholds: the order for it
    and the drug stop leaving, and the decision records the code sets it was made by."""
    extension = tmp_path / "plan-codes.json"
    extension.write_text(
        orjson.dumps(
            {
                "version": "plan-7",
                "categories": [
                    {
                        "name": "plan-local",
                        "description": "Drugs our state's law protects",
                        "legal_basis": "State statute (example)",
                        "codes": [{"system": RXNORM, "code": "197361"}],
                    }
                ],
            }
        ).decode()
    )
    old = old_payer(server, tmp_path, PAYERBRIDGE_SENSITIVE_CODE_SETS=str(extension))
    payer: ServerProcess = old["payer"]
    shown = payer.cli("consents", "code-sets")
    assert shown.returncode == 0, shown.stderr
    assert "payerbridge-2027.01+plan-7 sha256:" in shown.stdout and "plan-local" in shown.stdout
    with payer.client_with(old["regular"]) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    kept = keys(stored([e["resource"] for e in bundle["entry"]]))
    also_withheld = {"MedicationRequest/p1-bp-order", "Medication/amlodipine"}
    assert kept == set(DATA) - WITHHELD_UNDER_REGULAR - also_withheld - {
        "Organization/amlodipine-maker"  # reached only through the withheld drug
    }
    with payer.platform() as platform:
        decisions = [
            e
            for e in platform.audit.for_entity("Patient", "p1")
            if e["action"] == "consent.decision" and e["detail"]["hop"] == "everything"
        ]
    label = shown.stdout.split("code sets ", 1)[1].split()[:2]
    assert decisions and decisions[-1]["detail"]["code_sets"] == " ".join(label)


def test_a_code_set_file_that_cannot_be_used_stops_the_payer_with_the_reason(
    tmp_path: Path,
) -> None:
    extension = tmp_path / "plan-codes.json"
    extension.write_text('{"version": "plan-8", "categories": [{"name": "hiv", "code": []}]}')
    shown = run_cli(
        ["consents", "code-sets", "--data-dir", str(tmp_path / "data")],
        env={"PAYERBRIDGE_SENSITIVE_CODE_SETS": str(extension)},
    )
    assert shown.returncode != 0
    assert "PAYERBRIDGE_SENSITIVE_CODE_SETS" in shown.stderr and "categories.0.code" in shown.stderr


def test_everything_and_searches_give_the_payer_to_payer_window(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Five years of service dates, current care whatever its age, and prior
    authorizations while pending or for a year after their last change; ``_since`` is
    not rewritten, and the first page's audit event counts what the window left out."""
    today = date.today()
    long_ago, lately = f"{today.year - 7}-05-01", (today - timedelta(days=90)).isoformat()

    def record(resource_type: str, rid: str, **fields: Any) -> dict[str, Any]:
        subject = "patient" if resource_type == "ExplanationOfBenefit" else "subject"
        return {
            "resourceType": resource_type,
            "id": rid,
            subject: {"reference": "Patient/p1"},
            **fields,
        }

    def visit(rid: str, day: str) -> dict[str, Any]:
        return record("Encounter", rid, status="finished", period={"start": day, "end": day})

    def prior_auth(rid: str, outcome: str) -> dict[str, Any]:
        return record(
            "ExplanationOfBenefit",
            rid,
            use="preauthorization",
            status="active",
            outcome=outcome,
            meta={"profile": [PRIOR_AUTH]},
        )

    status = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    records = [
        a_patient("p1"),
        a_coverage("p1-cov", patient="p1"),
        visit("recent-visit", lately),
        visit("old-visit", long_ago),
        record(
            "Condition",
            "old-diabetes",
            clinicalStatus={"coding": [{"system": status, "code": "active"}]},
            onsetDateTime=long_ago,
        ),
        record(
            "Condition",
            "old-sprain",
            clinicalStatus={"coding": [{"system": status, "code": "resolved"}]},
            onsetDateTime=long_ago,
        ),
        record(
            "Provenance",
            "old-visit-prov",
            target=[{"reference": "Encounter/old-visit"}],
            recorded=f"{long_ago}T00:00:00Z",
            agent=[{"who": {"reference": "Organization/org1"}}],
        ),
        prior_auth("pending-auth", "queued"),
        prior_auth("decided-auth", "complete"),
    ]
    old = old_payer(server, tmp_path, {f"{r['resourceType']}/{r['id']}": r for r in records})
    payer: ServerProcess = old["payer"]
    # The prior authorization decided long ago: changed more than a year before now.
    with payer.platform() as platform, platform.engine.begin() as connection:
        connection.execute(
            update(fhir_resources)
            .where(fhir_resources.c.ref == "ExplanationOfBenefit/decided-auth")
            .values(last_updated=datetime.now(UTC) - timedelta(days=400))
        )
    in_window = {
        "Patient/p1",
        "Coverage/p1-cov",
        "Encounter/recent-visit",
        "Condition/old-diabetes",
        "ExplanationOfBenefit/pending-auth",
    }
    with payer.client_with(old["sensitive"]) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
        searched = client.get(
            "/fhir/ExplanationOfBenefit", params={"patient": "p1", "_profile": PRIOR_AUTH}
        ).json()
        visits = client.get(
            "/fhir/Encounter", params={"patient": "p1", "_revinclude": "Provenance:target"}
        ).json()
    given = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert {k for k in given if not k.startswith("Provenance/")} == in_window
    assert "Provenance/old-visit-prov" not in given  # about nothing that went
    assert bundle["total"] == len(in_window)
    auths = [e["resource"]["id"] for e in searched["entry"] if e["search"]["mode"] == "match"]
    assert auths == ["pending-auth"]
    assert [e["resource"]["id"] for e in visits["entry"] if e["search"]["mode"] == "match"] == [
        "recent-visit"
    ]
    with payer.platform() as platform:
        first = [
            e
            for e in platform.audit.for_entity("Patient", "p1")
            if e["action"] == "patient.everything"
        ]
    assert first[0]["detail"]["outside_window"] == 4  # two old records, a stale auth, a Provenance
