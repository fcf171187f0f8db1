"""Provider Access (issue 72, ADR 0059) through the CLI and HTTP, on a real server:
attribution derived from the plan's claims and encounters and loaded from a roster, the
provider's own pdex-provider-group read by its organization only, opt-outs honoured at
the next read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.fhir.profiles import ProfileChecker
from tests.builders import a_coverage, a_member_bundle, a_patient
from tests.e2e.test_bulk_export import ASYNC, files, finished
from tests.servers import ServerProcess

CLINIC, DOCTOR, STRANGER = "1679576722", "1200000101", "1310000009"
READER = "system/Group.r system/*.rs"
# The plan's members pa1..pa6: no two alike, so each is matched on her own.
PEOPLE = (
    ("Ana", "Garcia", "1980-02-03", "female"),
    ("Ben", "Okafor", "1972-05-14", "male"),
    ("Chloe", "Nguyen", "1991-09-09", "female"),
    ("Dev", "Patel", "1965-12-01", "male"),
    ("Ema", "Kowalski", "2001-03-30", "female"),
    ("Farid", "Haddad", "1988-07-07", "male"),
)
PDEX = "hl7.fhir.us.davinci-pdex%23"
PROVIDER_MATCH = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/ProviderMemberMatch"


def _ago(days: int) -> str:
    return (date.today() - timedelta(days=days)).isoformat()


def _claim(cid: str, patient: str, served: str, **names: Any) -> dict[str, Any]:
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": cid,
        "status": "active",
        "use": "claim",
        "patient": {"reference": f"Patient/{patient}"},
        "created": served,
        "billablePeriod": {"start": served},
        "insurer": {"reference": "Organization/plan"},
        "outcome": "complete",
        **names,
    }


def _records() -> list[dict[str, Any]]:
    npi = lambda value: [{"system": NPI_SYSTEM, "value": value}]  # noqa: E731
    return [
        *(
            resource
            for i, (given, family, born, gender) in enumerate(PEOPLE, start=1)
            for resource in (
                a_patient(
                    f"pa{i}",
                    given=given,
                    family=family,
                    birth_date=born,
                    gender=gender,
                    member_id=f"PA{i}",
                ),
                a_coverage(
                    f"pa{i}-cov", patient=f"pa{i}", member_id=f"PA{i}", subscriber_id=f"PA{i}"
                ),
            )
        ),
        {"resourceType": "Organization", "id": "plan", "name": "The Plan"},
        {
            "resourceType": "Organization",
            "id": "clinic",
            "name": "Clinic",
            "identifier": npi(CLINIC),
        },
        {"resourceType": "Practitioner", "id": "doc", "identifier": npi(DOCTOR)},
        _claim(
            "e1",
            "pa1",
            _ago(30),
            provider={"reference": "Organization/clinic"},
            total=[{"category": {"text": "paid"}, "amount": {"value": 120, "currency": "USD"}}],
        ),
        {
            "resourceType": "Medication",
            "id": "arv",  # bictegravir / emtricitabine / tenofovir: HIV, sensitive
            "code": {
                "coding": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1999667"}
                ]
            },
        },
        {
            "resourceType": "MedicationRequest",
            "id": "pa1-arv",
            "status": "active",
            "intent": "order",
            "authoredOn": _ago(20),
            "subject": {"reference": "Patient/pa1"},
            "medicationReference": {"reference": "Medication/arv"},
        },
        _claim(
            "e2",
            "pa2",
            _ago(10),
            provider={"reference": "Organization/plan"},
            careTeam=[{"sequence": 1, "provider": {"reference": "Practitioner/doc"}}],
        ),
        _claim("e3", "pa3", _ago(800), provider={"reference": "Organization/clinic"}),
        {
            "resourceType": "Encounter",
            "id": "enc4",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/pa4"},
            "period": {"start": _ago(5)},
            "serviceProvider": {"reference": "Organization/clinic"},
        },
    ]


@pytest.fixture(scope="module")
def plan(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("provider-access") / "plan.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in _records()))
    payer = module_server("plan", import_files=[data])
    derived = payer.cli("attribution", "derive", "--look-back-days", "365")
    assert derived.returncode == 0, derived.stderr
    return {
        "payer": payer,
        "derived": orjson.loads(derived.stdout),
        "clinic": payer.register_client("clinic-app", npi=CLINIC, scope=READER),
        "doctor": payer.register_client("doctor-app", npi=DOCTOR, scope=READER),
        "stranger": payer.register_client("stranger-app", npi=STRANGER, scope=READER),
        "operator": payer.register_client("pa-operator", scope="payerbridge/operator"),
        "attesting": payer.register_client(
            "attesting-app", npi=STRANGER, scope=f"{READER} {PROVIDER_MATCH}"
        ),
        "roster_dir": data.parent,
    }


def _group(plan: dict[str, Any], reader: str, npi: str) -> Any:
    with plan["payer"].client_with(plan[reader]) as client:
        return client.get(f"/fhir/Group/provider-{npi}")


def _members(group: dict[str, Any]) -> set[str]:
    return {m["entity"]["reference"].removeprefix("Patient/") for m in group["member"]}


def _opted_out(group: dict[str, Any]) -> int:
    counts = [e["valueQuantity"]["value"] for e in group["extension"] if "opted-out" in e["url"]]
    return int(counts[0])


def test_claims_and_encounters_attribute_members_to_the_providers_they_name(
    plan: dict[str, Any],
) -> None:
    assert plan["derived"]["providers"] == 2
    assert plan["derived"]["members"] == 4  # pa3's too: attributed once, long ago
    answer = _group(plan, "clinic", CLINIC)
    assert answer.status_code == 200, answer.text
    group = answer.json()
    assert _members(group) == {"pa1", "pa4"}  # pa3's claim is older than the look-back
    assert ProfileChecker.bundled().check(group) == []
    assert _members(_group(plan, "doctor", DOCTOR).json()) == {"pa2"}
    with plan["payer"].platform() as platform:
        reads = platform.audit.for_entity("Group", f"provider-{CLINIC}")
    assert reads and reads[-1]["action"] == "provider-access.read"
    assert (reads[-1]["actor"], reads[-1]["detail"]["purpose"]) == ("clinic-app", "TREAT")


def test_a_provider_finds_its_own_group_by_searching_and_no_other(plan: dict[str, Any]) -> None:
    with plan["payer"].client_with(plan["clinic"]) as client:
        found = client.get(f"/fhir/Group?identifier={NPI_SYSTEM}|{CLINIC}").json()
        other = client.get(f"/fhir/Group?identifier={NPI_SYSTEM}|{DOCTOR}").json()
        coded = client.get("/fhir/Group?code=nomatch").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [f"provider-{CLINIC}"]
    assert not other.get("entry") and not coded.get("entry")
    with plan["payer"].client_with(plan["stranger"]) as client:
        nothing = client.get("/fhir/Group").json()
    assert not nothing.get("entry")  # attributed no member: no Group to find


def test_another_providers_group_does_not_exist_for_a_provider(plan: dict[str, Any]) -> None:
    for reader, npi in (("doctor", CLINIC), ("stranger", CLINIC), ("clinic", DOCTOR)):
        answer = _group(plan, reader, npi)
        assert answer.status_code == 404, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
    empty = _group(plan, "stranger", STRANGER)
    assert empty.status_code == 200 and empty.json()["quantity"] == 0


def test_a_roster_adds_members_and_a_defective_one_changes_nothing(plan: dict[str, Any]) -> None:
    payer, folder = plan["payer"], plan["roster_dir"]
    good = folder / "doctor-roster.csv"
    good.write_text(f"provider_npi,patient_id,start,end\n{DOCTOR},pa5,{_ago(1)},\n")
    loaded = payer.cli("attribution", "load", str(good))
    assert loaded.returncode == 0, loaded.stderr
    assert orjson.loads(loaded.stdout)["members"] == 1
    assert _members(_group(plan, "doctor", DOCTOR).json()) == {"pa2", "pa5"}

    bad = folder / "doctor-roster-2.csv"
    bad.write_text(
        f"provider_npi,patient_id,start,end\n{DOCTOR},pa3,{_ago(1)},\n"
        f"{DOCTOR},nobody-here,{_ago(1)},\n1234,pa1,{_ago(1)},\n"
    )
    refused = payer.cli("attribution", "load", str(bad), "--name", "doctor-roster")
    assert refused.returncode != 0
    assert "line 4" in refused.stdout + refused.stderr  # the bad NPI, named by line
    unknown = folder / "doctor-roster-3.csv"
    unknown.write_text(f"provider_npi,patient_id,start,end\n{DOCTOR},nobody-here,{_ago(1)},\n")
    refused = payer.cli("attribution", "load", str(unknown), "--name", "doctor-roster")
    assert refused.returncode != 0
    assert "holds no Patient" in refused.stdout + refused.stderr
    assert _members(_group(plan, "doctor", DOCTOR).json()) == {"pa2", "pa5"}


def _export(plan: dict[str, Any], reader: str, npi: str, query: str) -> Any:
    with plan["payer"].client_with(plan[reader]) as client:
        return client.post(
            f"/fhir/Group/provider-{npi}/$davinci-data-export?{query}", headers=ASYNC
        )


def _exported(plan: dict[str, Any], reader: str, npi: str, query: str) -> dict[str, Any]:
    with plan["payer"].client_with(plan[reader]) as client:
        manifest = finished(client, _export(plan, reader, npi, query))
        return files(client, manifest["output"])


def _patients(found: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {r["id"] for r in found.get("Patient", [])}


def test_a_provider_downloads_its_attributed_members_within_the_rules_scope(
    plan: dict[str, Any],
) -> None:
    found = _exported(plan, "clinic", CLINIC, f"exportType={PDEX}provider-download")
    assert _patients(found) == {"pa1", "pa4"}
    claims = {r["id"]: r for r in found["ExplanationOfBenefit"]}
    assert set(claims) == {"e1"}  # pa3's old claim is not a member's it may have
    assert "total" not in claims["e1"]  # no remittance or cost-sharing leaves
    assert "MedicationRequest" not in found  # sensitive: no consent carries it here
    assert {r["id"] for r in found["Encounter"]} == {"enc4"}
    with plan["payer"].platform() as platform:
        decided = [
            e
            for e in platform.audit.for_entity("Patient", "pa1")
            if e["action"] == "provider-access.decision"
        ]
    assert decided and decided[-1]["outcome"] == "permit"
    assert decided[-1]["detail"]["provider_npi"] == CLINIC


def test_a_provider_export_is_refused_what_it_may_not_ask(plan: dict[str, Any]) -> None:
    wrong_type = _export(plan, "clinic", CLINIC, f"exportType={PDEX}payertopayer")
    assert wrong_type.status_code == 400, wrong_type.text
    assert "provider-download" in wrong_type.text
    no_since = _export(plan, "clinic", CLINIC, f"exportType={PDEX}provider-delta")
    assert no_since.status_code == 400 and "_since" in no_since.text
    for reader, npi in (("doctor", CLINIC), ("stranger", CLINIC)):
        other = _export(plan, reader, npi, f"exportType={PDEX}provider-download")
        assert other.status_code == 404, other.text
    stranger = _export(
        plan, "clinic", CLINIC, f"exportType={PDEX}provider-download&patient=Patient/pa2"
    )
    assert stranger.status_code == 400 and "pa2" in stranger.text


def test_a_provider_delta_gives_only_what_changed_since(plan: dict[str, Any]) -> None:
    def delta(since: date) -> dict[str, Any]:
        query = f"exportType={PDEX}provider-delta&_since={since.isoformat()}T00:00:00Z"
        return _exported(plan, "clinic", CLINIC, query)

    assert {r["id"] for r in delta(date.today() - timedelta(days=1))["ExplanationOfBenefit"]} == {
        "e1"
    }
    assert "ExplanationOfBenefit" not in delta(date.today() + timedelta(days=1))


def test_an_opt_out_leaves_every_group_at_the_next_read_and_an_opt_in_brings_her_back(
    plan: dict[str, Any],
) -> None:
    payer = plan["payer"]
    out = payer.cli("opt-outs", "record", "pa1", "--reason", "member-choice")
    assert out.returncode == 0, out.stderr
    group = _group(plan, "clinic", CLINIC).json()
    assert _members(group) == {"pa4"}
    assert _opted_out(group) == 1
    assert ProfileChecker.bundled().check(group) == []

    back = payer.cli("opt-outs", "withdraw", "pa1")
    assert back.returncode == 0, back.stderr
    assert _members(_group(plan, "clinic", CLINIC).json()) == {"pa1", "pa4"}

    # One provider only: the doctor loses pa2, the clinic keeps its members.
    specific = payer.cli(
        "opt-outs", "record", "pa2", "--scope", "provider-specific", "--provider", DOCTOR
    )
    assert specific.returncode == 0, specific.stderr
    assert "pa2" not in _members(_group(plan, "doctor", DOCTOR).json())
    assert _members(_group(plan, "clinic", CLINIC).json()) == {"pa1", "pa4"}

    wrong = payer.cli("opt-outs", "record", "pa4", "--scope", "provider-specific")
    assert wrong.returncode != 0
    assert "names the provider" in wrong.stdout + wrong.stderr
    with payer.platform() as platform:
        actions = [e["action"] for e in platform.audit.for_entity("Patient", "pa1")]
    assert actions.count("provider-access.opt-out") == 1
    assert actions.count("provider-access.opt-in") == 1


def test_an_opt_out_is_honoured_at_the_next_export(plan: dict[str, Any]) -> None:
    payer = plan["payer"]
    out = payer.cli(
        "opt-outs", "record", "pa4", "--scope", "provider-specific", "--provider", CLINIC
    )
    assert out.returncode == 0, out.stderr
    found = _exported(plan, "clinic", CLINIC, f"exportType={PDEX}provider-download")
    assert _patients(found) == {"pa1"}
    assert "Encounter" not in found


def _attesting(index: int, pid: str, *, signer: str = STRANGER, **consent: Any) -> dict[str, Any]:
    """A MemberBundle for the plan's member pa<index> (or a stranger's demographics), the
    provider attesting its treatment relationship with her."""
    given, family, born, gender = (
        PEOPLE[index - 1] if index else ("Zed", "Nobody", "1950-01-01", "male")
    )
    bundle = a_member_bundle(pid, given, family, born, gender, f"PA{index}")
    bundle["part"] = [
        p for p in bundle["part"] if p["name"] in ("MemberPatient", "CoverageToMatch")
    ]
    attestation = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": _ago(1),
        "performer": [{"identifier": {"system": NPI_SYSTEM, "value": signer}}],
        "provision": {"period": {"start": _ago(30)}},
        **consent,
    }
    bundle["part"].append({"name": "Consent", "resource": attestation})
    return bundle


def test_provider_member_match_answers_in_three_groups_and_attests_the_matched(
    plan: dict[str, Any],
) -> None:
    payer = plan["payer"]
    out = payer.cli("opt-outs", "record", "pa6", "--reason", "privacy-concern")
    assert out.returncode == 0, out.stderr
    request = {
        "resourceType": "Parameters",
        "parameter": [
            _attesting(5, "sub-ema"),  # verified: matched
            _attesting(3, "sub-chloe", signer=CLINIC),  # another provider's word: not verified
            _attesting(0, "sub-nobody"),  # nobody the plan holds
            _attesting(6, "sub-farid"),  # opted out
            _attesting(2, "sub-ben", status="inactive"),
        ],
    }
    with payer.client_with(plan["attesting"]) as client:
        manifest = finished(
            client, client.post("/fhir/Group/$provider-member-match", json=request, headers=ASYNC)
        )
        [groups] = files(client, manifest["output"]).values()
    by_code = {g["code"]["coding"][0]["code"]: g for g in groups}
    assert set(by_code) == {"match", "nomatch", "consentconstraint"}
    for group in groups:
        assert ProfileChecker.bundled().check(group) == [], group["code"]
    assert [m["entity"]["reference"] for m in by_code["match"]["member"]] == ["Patient/pa5"]
    assert len(by_code["nomatch"]["member"]) == 3
    assert [m["entity"]["reference"] for m in by_code["consentconstraint"]["member"]] == [
        "#sub-farid"
    ]
    # The verified attestation attributes her: the provider's Group lists her now.
    assert _members(_group(plan, "stranger", STRANGER).json()) == {"pa5"}
    with payer.platform() as platform:
        attested = [
            e["outcome"]
            for e in platform.audit.for_entity("Patient", "pa3")
            if e["action"] == "provider-access.attestation"
        ]
    assert attested == ["not-verified"]

    # MatchedMembers is what the provider exports: her data, and no one else's.
    matched = by_code["match"]["id"]
    with payer.client_with(plan["attesting"]) as client:
        kicked = client.post(
            f"/fhir/Group/{matched}/$davinci-data-export?exportType={PDEX}provider-download",
            headers=ASYNC,
        )
        found = files(client, finished(client, kicked)["output"])
        wrong = client.post(
            f"/fhir/Group/{matched}/$davinci-data-export?exportType={PDEX}payertopayer",
            headers=ASYNC,
        )
    assert _patients(found) == {"pa5"}
    assert wrong.status_code == 400
    with payer.client_with(plan["clinic"]) as client:
        other = client.post(
            f"/fhir/Group/{matched}/$davinci-data-export?exportType={PDEX}provider-download",
            headers=ASYNC,
        )
    assert other.status_code == 404


def test_provider_member_match_needs_the_providers_scope(plan: dict[str, Any]) -> None:
    request = {"resourceType": "Parameters", "parameter": [_attesting(5, "sub-ema")]}
    with plan["payer"].client_with(plan["stranger"]) as client:
        refused = client.post("/fhir/Group/$provider-member-match", json=request, headers=ASYNC)
    assert refused.status_code == 403, refused.text


def test_operators_record_and_read_opt_outs_over_http(plan: dict[str, Any]) -> None:
    payer = plan["payer"]
    with payer.client_with(plan["operator"]) as client:
        made = client.post(
            "/provider-access/opt-outs",
            json={"member_id": "pa3", "choice": "opt-out", "reason": "privacy-concern"},
        )
        assert made.status_code == 201, made.text
        read = client.get("/provider-access/members/pa3/opt-outs").json()
        assert read["opted_out_of_all"] is True
        assert [c["choice"] for c in read["choices"]] == ["opt-out"]
        back = client.post(
            "/provider-access/opt-outs", json={"member_id": "pa3", "choice": "opt-in"}
        )
        assert back.status_code == 201
        assert (
            client.get("/provider-access/members/pa3/opt-outs").json()["opted_out_of_all"] is False
        )
        unknown = client.post(
            "/provider-access/opt-outs", json={"member_id": "nobody", "choice": "opt-out"}
        )
        assert unknown.status_code == 404
        lacking = client.post(
            "/provider-access/opt-outs",
            json={"member_id": "pa3", "choice": "opt-out", "scope": "provider-specific"},
        )
        assert lacking.status_code in (400, 422) and "provider" in lacking.text
        derived = client.post("/provider-access/attribution/derive", json={"look_back_days": 365})
        assert derived.status_code == 200 and derived.json()["providers"] == 2
    with payer.client_with(plan["clinic"]) as client:
        refused = client.post(
            "/provider-access/opt-outs", json={"member_id": "pa3", "choice": "opt-in"}
        )
    assert refused.status_code == 403


def test_an_operator_records_an_opt_out_in_the_console(plan: dict[str, Any]) -> None:
    import html
    import re

    from payerbridge.security.model import Role
    from payerbridge.security.operator_accounts import AddOperator, add_operator
    from tests.e2e.test_holds import PASSWORD, console

    payer = plan["payer"]
    with payer.platform() as platform:
        add_operator(
            AddOperator("pa-ops", Role.OPERATOR, PASSWORD, "test"), platform.units.operators()
        )
    with console(payer, "pa-ops") as browser:
        page = browser.get("/console/opt-outs?member_id=pa2").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None, page[:500]
        form = {"csrf_token": csrf.group(1), "member_id": "pa2", "choice": "opt-out",
                "scope": "global", "reason": "member-choice"}  # fmt: skip
        done = browser.post("/console/opt-outs", data=form, follow_redirects=True)
        assert done.status_code == 200, done.text[:500]
        shown = html.unescape(done.text)
        assert "opted out of every provider" in shown and "member-choice" in shown
        bad = browser.post("/console/opt-outs", data={**form, "scope": "provider-specific"})
        assert bad.status_code == 400 and "names the provider" in html.unescape(bad.text)
    assert "pa2" not in _members(_group(plan, "doctor", DOCTOR).json())
    with payer.platform() as platform:
        actors = [
            e["actor"]
            for e in platform.audit.for_entity("Patient", "pa2")
            if e["action"] == "provider-access.opt-out"
        ]
    assert "console:pa-ops" in actors
