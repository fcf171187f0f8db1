"""The X12 mappings (x12-834-enrollment, x12-837-eob, x12-278-prior-auth): each has
examples, and what they give keeps the payer-to-payer rules (their examples are run
against their expected outputs with every other mapping's, in test_mapping.py;
``payerbridge mappings test --record`` writes the expected files again)."""

from __future__ import annotations

import string
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payerbridge.backends.examples import run_example
from payerbridge.backends.mapping import (
    BUILT_IN_MAPPINGS,
    Mapping,
    RecordNotMapped,
    load_mapping,
)
from payerbridge.backends.model import Location, RecordProblem, SourceRecord
from payerbridge.backends.readers import read_file
from payerbridge.fhir.profiles import ProfileChecker

X12_MAPPINGS = [
    "x12-837-eob/1.0.0",
    "x12-837-eob/1.1.0",
    "x12-834-enrollment/1.0.0",
    "x12-834-enrollment/1.1.0",
    "x12-278-prior-auth/1.0.0",
]


def outcome(mapping: Mapping, example: Path) -> dict[str, Any]:
    """What the engine gives for one example file, as ``payerbridge mappings test``
    runs it (every shipped example is checked in test_mapping.py)."""
    (found,) = [e for e in mapping.examples if e.input == example]
    return run_example(mapping, found).actual


def test_every_x12_mapping_has_examples() -> None:
    for name in X12_MAPPINGS:
        if (BUILT_IN_MAPPINGS / name).exists():
            assert load_mapping(BUILT_IN_MAPPINGS / name).examples, name


def test_an_837_profile_per_kind_and_no_amounts() -> None:
    """Each claim kind claims its CARIN BB Basis profile, and no amount is carried."""
    directory = BUILT_IN_MAPPINGS / "x12-837-eob/1.0.0"
    mapping = load_mapping(directory)
    profiles = set()
    for example in mapping.examples:
        for resource in outcome(mapping, example.input)["resources"]:
            profiles.update(resource["meta"]["profile"])
            assert not {"total", "payment", "benefitBalance"} & set(resource)
            for item in resource["item"]:
                assert not {"net", "unitPrice", "factor"} & set(item)
                for adjudication in item.get("adjudication", []):
                    assert "amount" not in adjudication
    base = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-"
    assert {
        f"{base}Professional-NonClinician-Basis|2.2.0",
        f"{base}Outpatient-Institutional-Basis|2.2.0",
        f"{base}Oral-Basis|2.2.0",
    } <= profiles


def test_a_problem_names_the_file_and_segment() -> None:
    problem = RecordProblem(Location("f.837", segment=7, segment_id="CLM"), "why", "value")
    assert str(problem) == "f.837: segment 7 CLM: why"


# -- the 834 ------------------------------------------------------------------------

ENROLLMENT = BUILT_IN_MAPPINGS / "x12-834-enrollment/1.0.0"
CLAIMS = BUILT_IN_MAPPINGS / "x12-837-eob/1.0.0"
PRIOR_AUTH = BUILT_IN_MAPPINGS / "x12-278-prior-auth/1.0.0"


def mapped(mapping: Mapping, path: Path) -> list[dict[str, Any]]:
    """The resources of every record of ``path`` (which must all map)."""
    resources: list[dict[str, Any]] = []
    for item in read_file(mapping.input, path, mapping.input_options):
        assert isinstance(item, SourceRecord), item
        resources += mapping.apply(item.data, source_id="enrollment", namespace="plan")
    return resources


def enrollment_834(member_id: str, dependent: tuple[str, str | None, str] | None) -> str:
    """A subscriber (and a dependent without its own member id: first name, CCYYMMDD
    birth date or no DMG, INS02) in a valid 834."""
    body = [
        "BGN*00*B1*20240101*1200****2",
        "N1*P5*SPONSOR*FI*999888777",
        "N1*IN*SANDBOX PLAN*FI*654456654",
        "INS*Y*18*021*20*A***FT",
        f"REF*0F*{member_id}",
        "NM1*IL*1*SMITH*JANE****34*111223333",
        "DMG*D8*19700101*F",
    ]
    if dependent is not None:
        first, birth, relationship = dependent
        body += [
            f"INS*N*{relationship}*021*20*A***FT",
            f"REF*0F*{member_id}",
            f"NM1*IL*1*SMITH*{first}****34*111223334",
        ]
        body += [f"DMG*D8*{birth}*M"] if birth else []
    return interchange("BE", "834", "005010X220A1", body)


def interchange(gs01: str, st01: str, version: str, body: list[str]) -> str:
    segments = [f"ST*{st01}*0001*{version}", *body]
    segments.append(f"SE*{len(segments) + 1}*0001")
    return (
        "~\n".join(
            [
                "ISA*00*          *00*          *ZZ*SENDER         *ZZ*PLAN           "
                "*240101*1200*^*00501*000000001*0*T*:",
                f"GS*{gs01}*SENDER*PLAN*20240101*1200*1*X*{version}",
                *segments,
                "GE*1*1",
                "IEA*1*000000001",
            ]
        )
        + "~\n"
    )


def claim_837(member_id: str, patient: tuple[str, str] | None) -> str:
    """The 837P example with its member id, and its 2000C patient (first name, birth
    date) or none (the subscriber is the patient)."""
    text = (CLAIMS / "examples/professional.837").read_text()
    text = text.replace("JS00111223333", member_id)
    if patient is None:
        # The subscriber as the patient: no 2000C loop (HL*2 says it has no child).
        cut = text.index("HL*3*2*23*0")
        end = text.index("CLM*")
        text = text.replace(text[cut:end], "").replace("HL*2*1*22*1", "HL*2*1*22*0")
        text = text.replace("SBR*P**2222-SJ", "SBR*P*18*2222-SJ")
        count = text.count("~") - 4  # ISA, GS, GE, IEA
        text = text.replace("SE*40*0021", f"SE*{count}*0021")
    else:
        first, birth = patient
        text = text.replace("NM1*QC*1*SMITH*TED", f"NM1*QC*1*SMITH*{first}")
        text = text.replace("DMG*D8*19730501*M", f"DMG*D8*{birth}*M")
    return text


names = st.text(alphabet=string.ascii_letters, min_size=1, max_size=12)
member_ids = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=5, max_size=12)
births = st.dates(min_value=date(1920, 1, 1), max_value=date(2023, 12, 31))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    member_id=member_ids,
    first=names,
    birth=births,
    relationship=st.sampled_from(["01", "19", "17"]),
)
def test_the_834_member_is_the_837_patient(
    tmp_path: Path, member_id: str, first: str, birth: date, relationship: str
) -> None:
    """A member enrolled by an 834 and billed for in an 837 is one Patient: the
    subscriber by the member id, a dependent by it, its birth date and first name (in
    whatever case each file writes it)."""
    enrollment, claims = load_mapping(ENROLLMENT), load_mapping(CLAIMS)
    ccyymmdd = birth.strftime("%Y%m%d")
    (tmp_path / "e.834").write_text(
        enrollment_834(member_id, (first.upper(), ccyymmdd, relationship))
    )
    (tmp_path / "dependent.837").write_text(claim_837(member_id, (first, ccyymmdd)))
    (tmp_path / "subscriber.837").write_text(claim_837(member_id, None))
    patients = [
        r["id"] for r in mapped(enrollment, tmp_path / "e.834") if r["resourceType"] == "Patient"
    ]
    (dependent_claim,) = mapped(claims, tmp_path / "dependent.837")
    (subscriber_claim,) = mapped(claims, tmp_path / "subscriber.837")
    assert len(set(patients)) == 2
    assert subscriber_claim["patient"]["reference"] == f"Patient/{patients[0]}"
    assert dependent_claim["patient"]["reference"] == f"Patient/{patients[1]}"


def test_a_family_shares_its_subscriber_and_each_member_has_a_coverage() -> None:
    """The corrected family: the subscriber's Patient is every Coverage's subscriber; a
    dependent has its own Coverage and a RelatedPerson for the subscriber; the child with
    its own member id (NM108 ZZ) is identified by it."""
    resources = outcome(
        load_mapping(ENROLLMENT), ENROLLMENT / "examples/family-one-subscriber-id.834"
    )["resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    subscriber, spouse, child = by_type["Patient"]
    assert {c["subscriber"]["reference"] for c in by_type["Coverage"]} == {
        f"Patient/{subscriber['id']}"
    }
    assert [c["beneficiary"]["reference"] for c in by_type["Coverage"]] == [
        f"Patient/{p['id']}" for p in (subscriber, spouse, child)
    ]
    assert [r["patient"]["reference"] for r in by_type["RelatedPerson"]] == [
        f"Patient/{spouse['id']}",
        f"Patient/{child['id']}",
    ]
    assert [r["relationship"][0]["coding"][0]["code"] for r in by_type["RelatedPerson"]] == [
        "SPS",
        "PRN",
    ]
    assert child["identifier"][0]["value"] == "M000004"
    assert spouse["identifier"][0]["value"] == "M000002"  # the subscriber's, on her card


def test_a_termination_cancels_the_coverage() -> None:
    resources = outcome(load_mapping(ENROLLMENT), ENROLLMENT / "examples/termination.834")[
        "resources"
    ]
    coverages = [r for r in resources if r["resourceType"] == "Coverage"]
    assert [c["status"] for c in coverages] == ["cancelled", "cancelled"]
    assert [c["period"]["end"] for c in coverages] == ["2026-03-31", "2026-03-31"]


def test_a_dependent_without_a_birth_date_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "e.834").write_text(enrollment_834("M1", ("LUCAS", None, "19")))
    mapping = load_mapping(ENROLLMENT)
    items = list(read_file(mapping.input, tmp_path / "e.834", mapping.input_options))
    assert all(isinstance(item, SourceRecord) for item in items)
    assert isinstance(items[1], SourceRecord)
    with pytest.raises(RecordNotMapped, match=r"birth date \(2100A DMG02\)"):
        mapping.apply(items[1].data, source_id="enrollment", namespace="plan")


# -- every example resource against the profiles it claims ----------------------------

# 278 examples PDex cannot hold: the review action of a denial needs a CARC (README).
QUARANTINED = {("x12-278-prior-auth/1.0.0", "denied"): "denialreason.reason"}


# Elements FHIR R4 repeats (0..*) in what the 834 and 278 give: always JSON arrays, even
# with one value (JSONata makes a one-item sequence a single value unless told).
REPEATED = frozenset(
    [
        "identifier",
        "item",
        "careTeam",
        "diagnosis",
        "insurance",
        "adjudication",
        "extension",
        "preAuthRef",
        "preAuthRefPeriod",
        "name",
        "given",
        "prefix",
        "suffix",
        "telecom",
        "address",
        "line",
        "class",
        "payor",
        "coding",
        "modifier",
        "profile",
        "tag",
    ]
)


def repeated_elements_are_arrays(value: Any, path: str = "") -> list[str]:
    """The paths of repeated elements that are not arrays."""
    wrong = []
    if isinstance(value, dict):
        for key, item in value.items():
            at_root = "." not in path  # a Reference's identifier is single
            repeated = (key in REPEATED and (key != "identifier" or at_root)) or (
                key == "relationship" and path == "RelatedPerson"
            )
            if repeated and not isinstance(item, list):
                wrong.append(f"{path}.{key}")
            wrong += repeated_elements_are_arrays(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            wrong += repeated_elements_are_arrays(item, path)
    return wrong


@pytest.mark.parametrize(
    "name", ["x12-834-enrollment/1.0.0", "x12-834-enrollment/1.1.0", "x12-278-prior-auth/1.0.0"]
)
def test_every_example_resource_passes_the_profiles_it_claims(name: str) -> None:
    checker = ProfileChecker.bundled()
    mapping = load_mapping(BUILT_IN_MAPPINGS / name)
    for example in mapping.examples:
        for resource in outcome(mapping, example.input)["resources"]:
            assert repeated_elements_are_arrays(resource, resource["resourceType"]) == []
            issues = checker.check(resource)
            expected = QUARANTINED.get((name, example.name))
            if expected is None:
                assert issues == [], (example.name, [i.to_json() for i in issues])
            else:
                assert issues and all(expected in i.text for i in issues), example.name


def test_the_834_claims_us_core_6_1_profiles() -> None:
    mapping = load_mapping(ENROLLMENT)
    claimed = {
        (resource["resourceType"], profile)
        for example in mapping.examples
        for resource in outcome(mapping, example.input)["resources"]
        for profile in resource["meta"]["profile"]
    }
    base = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
    assert claimed == {
        ("Patient", f"{base}patient|6.1.0"),
        ("Coverage", f"{base}coverage|6.1.0"),
        ("RelatedPerson", f"{base}relatedperson|6.1.0"),
    }


# -- the 278 ------------------------------------------------------------------------


def test_a_278_decision_becomes_a_pdex_review_action_and_the_outcome() -> None:
    """Certified: a review action on the allowed units (the HSD quantity); pended: no
    adjudication, and the event partly decided."""
    mapping = load_mapping(PRIOR_AUTH)
    (authorization,) = outcome(mapping, PRIOR_AUTH / "examples/services.278")["resources"]
    assert authorization["use"] == "preauthorization"
    assert authorization["outcome"] == "partial"
    certified, pended = authorization["item"]
    (adjudication,) = certified["adjudication"]
    assert adjudication["category"]["coding"][0]["code"] == "allowedunits"
    assert adjudication["value"] == 12
    action = adjudication["extension"][0]
    assert action["url"].endswith("/extension-reviewAction")
    codes = {e["url"]: e for e in action["extension"]}
    assert codes["number"]["valueString"] == "AUTH240112001"
    assert codes[
        "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/extension-reviewActionCode"
    ]["valueCodeableConcept"]["coding"][0] == {
        "system": "https://codesystem.x12.org/005010/306",
        "code": "A1",
    }
    assert "adjudication" not in pended
    assert authorization["preAuthRef"] == ["AUTH240112001"]
    assert not {"total", "payment"} & set(authorization)


def test_the_278_patient_is_the_834_member(tmp_path: Path) -> None:
    """The admission example's dependent and subscriber, enrolled by an 834, are the
    278's patients."""
    (tmp_path / "e.834").write_text(enrollment_834("M1001", ("LUCAS", "20120305", "19")))
    patients = [
        r["id"]
        for r in mapped(load_mapping(ENROLLMENT), tmp_path / "e.834")
        if r["resourceType"] == "Patient"
    ]
    mapping = load_mapping(PRIOR_AUTH)
    (admission,) = outcome(mapping, PRIOR_AUTH / "examples/admission.278")["resources"]
    (services,) = outcome(mapping, PRIOR_AUTH / "examples/services.278")["resources"]
    assert admission["patient"]["reference"] == f"Patient/{patients[1]}"
    assert services["patient"]["reference"] == f"Patient/{patients[0]}"
