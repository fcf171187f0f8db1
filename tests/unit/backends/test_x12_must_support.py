"""The must-support elements the X12 files carry, filled by the 1.1.0 mappings (ADR 0058):
an 837's care team (CARIN BB 2.2.0 Basis), an 834's Coverage.type and a dependent's
RelatedPerson name and address (US Core 6.1.0), each meeting its profile; and the
context a mapping carries from one record of a file to the next (mapping.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from payerbridge.backends.examples import run_example
from payerbridge.backends.ingestion import (
    Intake,
    MadeFromSource,
    MappingRun,
    map_batches,
    refuse_to_hold,
)
from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, Mapping, RecordNotMapped, load_mapping
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.readers import read_file
from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.fhir.resources import compartment_patient

CLAIMS = BUILT_IN_MAPPINGS / "x12-837-eob/1.1.0"
ENROLLMENT = BUILT_IN_MAPPINGS / "x12-834-enrollment/1.1.0"
NPI = "http://hl7.org/fhir/sid/us-npi"
C4BB_ROLE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"
SOPT = "https://nahdo.org/sopt"
LINE_CODE = "urn:payerbridge:x12:insurance-line-code"


def example(mapping: Mapping, name: str) -> list[dict[str, Any]]:
    (found,) = [e for e in mapping.examples if e.name == name]
    run = run_example(mapping, found)
    assert run.actual["problems"] == []
    resources: list[dict[str, Any]] = run.actual["resources"]
    return resources


def of_type(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == kind]


def roles(eob: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, NPI, provider type) of each care team member, in order."""
    return [
        (
            member["role"]["coding"][0]["code"],
            member["provider"]["identifier"]["value"],
            member["provider"]["type"],
        )
        for member in eob["careTeam"]
    ]


def test_the_837i_attending_is_in_the_care_team_by_npi() -> None:
    first, second = example(load_mapping(CLAIMS), "institutional")
    assert roles(first) == [("attending", "1122334455", "Practitioner")]
    assert first["careTeam"][0]["provider"]["identifier"]["system"] == NPI
    assert first["careTeam"][0]["role"]["coding"][0]["system"] == C4BB_ROLE
    assert roles(second) == [("attending", "9999999999", "Practitioner")]
    taxonomy = second["careTeam"][0]["qualification"]["coding"][0]
    assert taxonomy == {"system": "http://nucc.org/provider-taxonomy", "code": "363LP0200N"}


def test_every_institutional_provider_loop_and_a_lines_own_provider() -> None:
    (eob,) = example(load_mapping(CLAIMS), "institutional-care-team")
    assert roles(eob) == [
        ("attending", "1122334455", "Practitioner"),
        ("operating", "1467560003", "Practitioner"),
        ("otheroperating", "1245319599", "Practitioner"),
        ("rendering", "1346336807", "Practitioner"),
        ("referring", "1003000126", "Practitioner"),
        ("rendering", "1568459006", "Practitioner"),  # line 2's own (2420C)
    ]
    assert [m["sequence"] for m in eob["careTeam"]] == [1, 2, 3, 4, 5, 6]
    # Line 2's operating physician is the claim's: one member, named by its sequence.
    assert [item.get("careTeamSequence") for item in eob["item"]] == [None, [2, 6]]


def test_professional_roles_come_from_the_professional_value_set() -> None:
    (eob,) = example(load_mapping(CLAIMS), "professional-care-team")
    assert [(r, n) for r, n, _ in roles(eob)] == [
        ("referring", "1003000126"),
        ("rendering", "1346336807"),
        ("supervisor", "1467560003"),
        ("rendering", "1568459006"),
    ]
    supervisor = eob["careTeam"][2]["role"]["coding"][0]
    assert supervisor["system"] == "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
    assert [item.get("careTeamSequence") for item in eob["item"]] == [None, None, [4], None]


def test_a_claim_without_provider_loops_has_no_care_team() -> None:
    (eob,) = example(load_mapping(CLAIMS), "professional")
    assert "careTeam" not in eob


def test_the_care_teams_meet_the_basis_profiles_and_a_wrong_role_does_not() -> None:
    checker = ProfileChecker.bundled()
    mapping = load_mapping(CLAIMS)
    for name in ("institutional", "institutional-care-team", "professional-care-team"):
        for eob in example(mapping, name):
            eob["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"
            assert checker.check(eob) == [], name
    # The binding is checked: a supervisor has no place on an institutional claim.
    (eob,) = example(mapping, "institutional-care-team")
    eob["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"
    eob["careTeam"][0]["role"]["coding"][0] = {
        "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
        "code": "supervisor",
    }
    assert any(i.path.startswith("ExplanationOfBenefit.careTeam") for i in checker.check(eob))


def test_the_834_coverage_type_is_the_insurance_line() -> None:
    resources = example(load_mapping(ENROLLMENT), "multiple-products")
    health, vision = of_type(resources, "Coverage")
    assert health["type"]["coding"] == [
        {"system": SOPT, "code": "5", "display": "PRIVATE HEALTH INSURANCE"},
        {"system": LINE_CODE, "code": "HLT"},
    ]
    assert vision["type"]["coding"] == [
        {"system": SOPT, "code": "562", "display": "Vision"},
        {"system": LINE_CODE, "code": "VIS"},
    ]


def test_every_insurance_line_code_the_834_allows_has_a_payer_type() -> None:
    mapping = load_mapping(ENROLLMENT)
    codes = "AG AH AJ AK DCP DEN EPO FAC HE HLT HMO LTC LTD MM MOD PDG POS PPO PRA STD UR VIS"
    for code in codes.split():
        assert mapping.translate(code, "x12-coverage-type", LINE_CODE)["system"] == SOPT
    with pytest.raises(RecordNotMapped, match="x12-coverage-type"):
        mapping.translate("XYZ", "x12-coverage-type", LINE_CODE)


def test_a_coverage_without_a_2300_loop_has_no_type() -> None:
    (coverage,) = of_type(example(load_mapping(ENROLLMENT), "terminate-subscriber"), "Coverage")
    assert "type" not in coverage


def test_a_dependents_related_person_is_named_and_addressed_as_the_subscriber() -> None:
    resources = example(load_mapping(ENROLLMENT), "family-one-subscriber-id")
    subscriber = of_type(resources, "Patient")[0]
    related = of_type(resources, "RelatedPerson")
    assert len(related) == 2
    for person in related:
        assert person["name"] == subscriber["name"]
        assert person["address"] == subscriber["address"]
        assert person["address"][0]["city"] == "RIVERSIDE"
    checker = ProfileChecker.bundled()
    for resource in resources:
        resource["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"
        assert checker.check(resource) == [], resource["resourceType"]


def test_a_related_person_takes_nothing_from_another_familys_subscriber() -> None:
    """family.834's de-identification gave each dependent its own REF*0F: the subscriber
    before them is not theirs. add-dependent.834 has no subscriber at all."""
    for name in ("family", "add-dependent"):
        for person in of_type(example(load_mapping(ENROLLMENT), name), "RelatedPerson"):
            assert not {"name", "address", "telecom"} & set(person), name


def test_the_subscribers_telecom_goes_with_the_name(tmp_path: Path) -> None:
    source = (ENROLLMENT / "examples/family-one-subscriber-id.834").read_text()
    with_phone = source.replace("N3*200 OAK AVE~", "PER*IP**HP*5555550123~\nN3*200 OAK AVE~")
    assert with_phone != source
    lines = with_phone.split("~\n")
    se = next(i for i, line in enumerate(lines) if line.startswith("SE*"))
    st = next(i for i, line in enumerate(lines) if line.startswith("ST*"))
    lines[se] = f"SE*{se - st + 1}*0001"
    (tmp_path / "e.834").write_text("~\n".join(lines))
    mapping = load_mapping(ENROLLMENT)
    context: Any = None
    related = []
    for item in read_file(mapping.input, tmp_path / "e.834", mapping.input_options):
        assert isinstance(item, SourceRecord), item
        given = mapping.apply(item.data, source_id="e", namespace="plan", context=context)
        context = mapping.carried(item.data, context, namespace="plan")
        related += of_type(given, "RelatedPerson")
    assert [p["telecom"] for p in related] == [
        [{"system": "phone", "use": "home", "value": "5555550123"}]
    ] * 2


def test_a_mapping_without_a_context_expression_carries_what_it_was_given() -> None:
    mapping = load_mapping(CLAIMS)
    assert mapping.carried({"kind": "837P"}, {"kept": 1}, namespace="plan") == {"kept": 1}
    assert mapping.carried({"kind": "837P"}, None, namespace="plan") is None


def _ingested(records: list[SourceRecord | RecordProblem]) -> list[dict[str, Any]]:
    """What ingestion keeps of ``records`` (one file's, in order), no profile failing."""
    mapping = load_mapping(ENROLLMENT)
    run = MappingRun(
        mapping,
        "enrollment",
        "plan",
        file_digest="0" * 64,
        recorded=datetime(2026, 1, 1, tzinfo=UTC),
        compartment_of=compartment_patient,
    )

    def provenance(made: MadeFromSource) -> dict[str, Any]:
        return {"resourceType": "Provenance", "id": made.provenance_id, "target": made.targets}

    intake = Intake(lambda _: [], refuse_to_hold, provenance, lambda *_: None)
    return [r for batch in map_batches(records, run, intake, size=2) for r, _ in batch.resources]


def test_ingestion_carries_the_subscriber_across_batches_and_not_past_a_refusal() -> None:
    path = ENROLLMENT / "examples/family-one-subscriber-id.834"
    records = list(read_file("x12", path, load_mapping(ENROLLMENT).input_options))
    kept = _ingested(records)  # batches of two records: the child is in the second
    related = of_type(kept, "RelatedPerson")
    assert [p["name"][0]["given"][0] for p in related] == ["ROBERT", "ROBERT"]
    targets = [t for p in of_type(kept, "Provenance") for t in p["target"]]
    assert {"RelatedPerson"} <= {t["resourceType"] for t in targets}
    # The subscriber's record refused (here: unreadable): his dependents take nothing.
    refused = RecordProblem(records[0].location, "unreadable", "structure")
    related = of_type(_ingested([refused, *records[1:]]), "RelatedPerson")
    assert len(related) == 2 and not any("name" in p for p in related)
