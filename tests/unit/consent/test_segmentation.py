"""Segmentation: what a regular consent withholds, and that nothing kept points at it."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.consent import ConsentPolicy, SegmentationPolicy, segment, supported_policies
from payerbridge.consent.categories import (
    ACT_CODE,
    CONFIDENTIALITY,
    CPT,
    ICD10CM,
    LOINC,
    RXNORM,
    SHIPPED_CODE_SETS,
    SNOMED,
    CodeSets,
    SensitiveCategory,
)
from payerbridge.consent.segmentation import (
    DEFAULT_SEGMENTABLE_TYPES,
    sensitive_categories_of,
    unsegmentable_types,
)
from payerbridge.fhir.resources import SUPPORTED_TYPES, compartment_patient, iter_references
from payerbridge_tools.sandbox import build_network, generate_payer_population

Resource = dict[str, Any]
STRIP_ONLY = SegmentationPolicy(withhold_encounters_of_sensitive_care=False)


def concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def ref(key: str) -> dict[str, str]:
    return {"reference": key}


def condition(cid: str, code: str = "E11.9", **extra: Any) -> Resource:
    return {
        "resourceType": "Condition",
        "id": cid,
        "code": concept(ICD10CM, code),
        "subject": ref("Patient/p1"),
        **extra,
    }


def encounter(eid: str, **extra: Any) -> Resource:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "type": [concept(SNOMED, "185349003")],
        "subject": ref("Patient/p1"),
        **extra,
    }


def observation(oid: str, code: str = "8867-4", **extra: Any) -> Resource:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": concept(LOINC, code),
        "subject": ref("Patient/p1"),
        **extra,
    }


def medication_request(mid: str, rxnorm: str = "314076", **extra: Any) -> Resource:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": concept(RXNORM, rxnorm),
        "subject": ref("Patient/p1"),
        **extra,
    }


def provenance(pid: str, *targets: str, **extra: Any) -> Resource:
    return {
        "resourceType": "Provenance",
        "id": pid,
        "target": [ref(t) for t in targets],
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": ref("Organization/old")}],
        **extra,
    }


def labelled(resource: Resource, *codes: tuple[str, str]) -> Resource:
    return {**resource, "meta": {"security": [{"system": s, "code": c} for s, c in codes]}}


def keys(resources: list[Resource]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def kept_keys(resources: list[Resource], policy: SegmentationPolicy | None = None) -> set[str]:
    return keys(segment(resources, policy or SegmentationPolicy()).kept)


def dangling(kept: list[Resource], withheld: set[str]) -> list[str]:
    return [reference for r in kept for reference in iter_references(r) if reference in withheld]


# -- recognizing sensitive data


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (condition("c", "F11.20"), {"substance-use"}),
        (condition("c", "f1120"), {"substance-use"}),
        (condition("c", "F17.210"), set()),  # nicotine: not Part 2
        (condition("c", "E11.9"), set()),
        (condition("c", "B20"), {"hiv"}),
        (condition("c", "A54.9"), {"sexually-transmitted-infection"}),
        (condition("c", "F32.9"), {"behavioral-health"}),
        (condition("c", "Z30.011"), {"reproductive-health"}),
        (condition("c", "Z15.01"), {"genetic"}),
        (condition("c", "T74.21XA"), {"sexual-and-domestic-violence"}),
        (
            {**condition("c"), "code": concept("http://hl7.org/fhir/sid/icd-10", "F10.2")},
            {"substance-use"},
        ),
        ({**condition("c"), "code": concept(SNOMED, "86406008")}, {"hiv"}),
        # A system we do not know: judged against every set (fail closed).
        ({**condition("c"), "code": concept("http://example.org/local", "B20")}, {"hiv"}),
        ({**condition("c"), "code": concept("http://example.org/local", "E11.9")}, set()),
        # Any element counts, not only the main code.
        ({**condition("c"), "category": [concept(ICD10CM, "F11.20")]}, {"substance-use"}),
        (observation("o", "56888-1"), {"hiv"}),
        (observation("o", "8867-4"), set()),
        (medication_request("m", "1819"), {"substance-use"}),
        (
            medication_request("m", "314076", reasonCode=[concept(ICD10CM, "F41.1")]),
            {"behavioral-health"},
        ),
        (
            {"resourceType": "Procedure", "id": "x", "code": concept(CPT, "58300")},
            {"reproductive-health"},
        ),
        (encounter("e", reasonCode=[concept(ICD10CM, "Z30.011")]), {"reproductive-health"}),
        (
            {
                "resourceType": "ExplanationOfBenefit",
                "id": "x",
                "diagnosis": [
                    {"sequence": 1, "diagnosisCodeableConcept": concept(ICD10CM, "I10")},
                    {"sequence": 2, "diagnosisCodeableConcept": concept(ICD10CM, "B20")},
                ],
            },
            {"hiv"},
        ),
        (
            {
                "resourceType": "ExplanationOfBenefit",
                "id": "x",
                "item": [{"sequence": 1, "productOrService": concept(CPT, "90837")}],
            },
            {"behavioral-health"},
        ),
        (
            {
                "resourceType": "DiagnosticReport",
                "id": "x",
                "code": concept(LOINC, "58410-2"),
                "conclusionCode": [concept(SNOMED, "165816005")],
            },
            {"hiv"},
        ),
        (
            {
                "resourceType": "MedicationDispense",
                "id": "x",
                "medicationCodeableConcept": concept(RXNORM, "6813"),
            },
            {"substance-use"},
        ),
        (
            {
                "resourceType": "Immunization",
                "id": "x",
                "vaccineCode": concept("http://hl7.org/fhir/sid/cvx", "165"),
            },
            set(),
        ),
        (
            {
                **medication_request("m"),
                "medicationReference": ref("#med"),
                "contained": [
                    {"resourceType": "Medication", "id": "med", "code": concept(RXNORM, "1999667")}
                ],
            },
            {"hiv"},
        ),
        (
            {
                **condition("c"),
                "code": {
                    "coding": [
                        {"system": ICD10CM, "code": "B20"},
                        {"system": ICD10CM, "code": "F32.9"},
                    ]
                },
            },
            {"hiv", "behavioral-health"},
        ),
    ],
)
def test_categories_are_found_by_code(resource: Resource, expected: set[str]) -> None:
    assert sensitive_categories_of(resource) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ((ACT_CODE, "ETH"), {"substance-use"}),
        ((ACT_CODE, "42CFRPart2"), {"substance-use"}),
        ((ACT_CODE, "HIV"), {"hiv"}),
        ((ACT_CODE, "PSY"), {"behavioral-health"}),
        ((ACT_CODE, "SEX"), {"reproductive-health"}),
        ((ACT_CODE, "STD"), {"sexually-transmitted-infection"}),
        ((ACT_CODE, "GDIS"), {"genetic"}),
        ((ACT_CODE, "SDV"), {"sexual-and-domestic-violence"}),
        ((CONFIDENTIALITY, "R"), {"restricted"}),
        ((CONFIDENTIALITY, "V"), {"restricted"}),
        ((CONFIDENTIALITY, "N"), set()),
        (("http://example.org/labels", "HIV"), {"hiv"}),  # an unknown system: fail closed
        (("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HIV"), set()),
    ],
)
def test_categories_are_found_by_security_label(label: tuple[str, str], expected: set[str]) -> None:
    # Labels count on any type, even one without code rules.
    for resource in (condition("c"), {"resourceType": "Organization", "id": "o"}):
        assert sensitive_categories_of(labelled(resource, label)) == expected


def test_categories_are_configurable() -> None:
    local = SensitiveCategory(
        name="local-rule",
        description="A plan-specific rule",
        legal_basis="State law X",
        security_labels=frozenset(),
        codes=frozenset({(LOINC, "8867-4")}),
        code_prefixes=frozenset({(ICD10CM, "E11.")}),  # written with the dot on purpose
    )
    policy = SegmentationPolicy(code_sets=CodeSets("local", (local,)))
    assert sensitive_categories_of(observation("o"), policy) == {"local-rule"}
    assert sensitive_categories_of(condition("c", "E11.9"), policy) == {"local-rule"}
    assert sensitive_categories_of(condition("c", "F11.20"), policy) == set()
    flagged = {**condition("c"), "category": [concept(ICD10CM, "F11.20")]}
    assert sensitive_categories_of(flagged) == {"substance-use"}  # any element counts


def test_every_default_category_is_documented() -> None:
    names = [category.name for category in SHIPPED_CODE_SETS.categories]
    assert len(names) == len(set(names))
    for category in SHIPPED_CODE_SETS.categories:
        assert category.description and category.legal_basis and category.security_labels


# -- segmentable types


def test_the_default_policy_can_segment_every_type_it_has_rules_for() -> None:
    assert unsegmentable_types(SUPPORTED_TYPES) == {
        "CarePlan",
        "CareTeam",
        "DocumentReference",
        "Goal",
    }
    assert {"Condition", "Encounter", "ExplanationOfBenefit", "Provenance"} <= (
        DEFAULT_SEGMENTABLE_TYPES
    )


def test_a_type_that_cannot_be_segmented_makes_regular_unsupported() -> None:
    assert supported_policies(["Condition", "Observation"]) == set(ConsentPolicy)
    assert supported_policies(["Condition", "DocumentReference"]) == {ConsentPolicy.SENSITIVE}


def test_segment_withholds_and_reports_what_it_cannot_judge() -> None:
    note = {"resourceType": "DocumentReference", "id": "n1", "subject": ref("Patient/p1")}
    result = segment(
        [condition("c1"), note, observation("o1", derivedFrom=[ref("DocumentReference/n1")])]
    )
    assert result.unsegmentable_types == {"DocumentReference"}
    assert keys(result.kept) == {"Condition/c1", "Observation/o1"}
    assert "derivedFrom" not in result.kept[1]


# -- withholding and stripping


def test_sensitive_resources_are_withheld_and_the_rest_pass_untouched() -> None:
    resources = [condition("c1"), condition("c2", "F11.20"), observation("o1")]
    before = copy.deepcopy(resources)
    result = segment(resources)
    assert keys(result.kept) == {"Condition/c1", "Observation/o1"}
    assert result.withheld_count == 1 and result.unsegmentable_types == frozenset()
    assert result.kept[0] is resources[0] and result.kept[1] is resources[2]
    assert resources == before


def test_nothing_sensitive_means_nothing_withheld() -> None:
    assert segment([]).kept == [] and segment([]).withheld_count == 0
    resources = [condition("c1"), observation("o1", encounter=ref("Encounter/e1")), encounter("e1")]
    assert segment(resources).kept == resources


def test_an_encounter_for_sensitive_care_is_withheld_by_default() -> None:
    resources = [
        condition("c1", "F11.20"),
        encounter("e1", diagnosis=[{"condition": ref("Condition/c1")}]),
        encounter("e2", reasonReference=[ref("Condition/c1")]),
        condition("c2", "F41.1", encounter=ref("Encounter/e3")),  # recorded during e3
        encounter("e3"),
        encounter("e4"),
    ]
    assert kept_keys(resources) == {"Encounter/e4"}


def test_without_encounter_withholding_only_the_references_go() -> None:
    # The narrative names nothing sensitive (a narrative that does withholds the Encounter).
    text = {"status": "generated", "div": "<div>Follow-up of c1 and c2</div>"}
    resources = [
        condition("c1", "F11.20"),
        condition("c2"),
        encounter(
            "e1",
            text=text,
            diagnosis=[
                {"condition": ref("Condition/c1"), "rank": 1},
                {"condition": ref("Condition/c2"), "rank": 2},
            ],
            reasonReference=[ref("Condition/c1")],
        ),
    ]
    result = segment(resources, STRIP_ONLY)
    assert keys(result.kept) == {"Condition/c2", "Encounter/e1"}
    kept_encounter = result.kept[1]
    assert kept_encounter["diagnosis"] == [{"condition": ref("Condition/c2"), "rank": 2}]
    assert "reasonReference" not in kept_encounter
    assert "text" not in kept_encounter  # the narrative may name the withheld diagnosis
    assert set(kept_encounter) <= set(resources[2])  # nothing added: no trace of withholding
    assert resources[2]["reasonReference"] == [ref("Condition/c1")]  # the input is untouched


def test_references_to_withheld_resources_are_removed_from_kept_ones() -> None:
    resources = [
        condition("c1", "B20"),
        medication_request("m1", reasonReference=[ref("Condition/c1")]),
        medication_request("m2", reasonReference=[ref("Condition/c1"), ref("Condition/c9")]),
        observation(
            "o1",
            focus=[ref("http://old.example/fhir/Condition/c1/_history/2")],
            extension=[{"url": "http://example.org/about", "valueReference": ref("Condition/c1")}],
        ),
    ]
    kept = segment(resources).kept
    assert "reasonReference" not in kept[0]
    assert kept[1]["reasonReference"] == [ref("Condition/c9")]
    assert "focus" not in kept[2] and "extension" not in kept[2]


def test_an_order_or_claim_about_withheld_data_is_withheld_with_it() -> None:
    clinic = labelled({"resourceType": "Organization", "id": "otp"}, (ACT_CODE, "42CFRPart2"))
    resources = [
        {"resourceType": "Medication", "id": "bup", "code": concept(RXNORM, "1819")},
        medication_request("m1", medicationReference=ref("Medication/bup")),
        condition("c1", "F10.20"),
        {
            "resourceType": "ExplanationOfBenefit",
            "id": "eob1",
            "diagnosis": [{"sequence": 1, "diagnosisReference": ref("Condition/c1")}],
        },
        clinic,
        {"resourceType": "ExplanationOfBenefit", "id": "eob2", "provider": ref("Organization/otp")},
        {"resourceType": "ExplanationOfBenefit", "id": "eob3", "provider": ref("Organization/pcp")},
    ]
    assert kept_keys(resources) == {"ExplanationOfBenefit/eob3"}


def test_provenance_keeps_only_kept_targets_and_goes_when_none_are_left() -> None:
    resources = [
        condition("c1", "F32.9"),
        condition("c2"),
        provenance("all", "Condition/c1"),
        provenance(
            "some",
            "Condition/c1",
            "Condition/c2",
            entity=[{"role": "source", "what": ref("Condition/c1")}],
        ),
    ]
    result = segment(resources)
    assert keys(result.kept) == {"Condition/c2", "Provenance/some"}
    assert result.withheld_count == 2
    kept_provenance = result.kept[1]
    assert kept_provenance["target"] == [ref("Condition/c2")]
    assert "entity" not in kept_provenance


def test_contained_resources_are_stripped_but_never_dropped() -> None:
    resources = [
        condition("c1", "B20"),
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "medicationReference": ref("#med"),
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "med",
                    "code": concept(RXNORM, "1"),
                    "extension": [{"url": "u", "valueReference": ref("Condition/c1")}],
                }
            ],
        },
    ]
    kept = segment(resources).kept
    assert kept[0]["contained"] == [
        {"resourceType": "Medication", "id": "med", "code": concept(RXNORM, "1")}
    ]


# -- a property: whatever the graph, nothing kept points at anything withheld


@st.composite
def record_graphs(draw: st.DrawFn) -> list[Resource]:
    codes = st.sampled_from(["E11.9", "I10", "F11.20", "B20", "Z30.011", "J06.9"])
    n_conditions = draw(st.integers(1, 6))
    n_encounters = draw(st.integers(1, 4))
    conditions = [f"Condition/c{i}" for i in range(n_conditions)]
    encounters = [f"Encounter/e{i}" for i in range(n_encounters)]
    resources: list[Resource] = [
        encounter(
            e.split("/")[1],
            diagnosis=[{"condition": ref(c)} for c in draw(st.lists(st.sampled_from(conditions)))],
        )
        for e in encounters
    ]
    resources += [
        condition(c.split("/")[1], draw(codes), encounter=ref(draw(st.sampled_from(encounters))))
        for c in conditions
    ]
    resources += [
        observation(
            f"o{i}",
            encounter=ref(draw(st.sampled_from(encounters))),
            hasMember=[ref(c) for c in draw(st.lists(st.sampled_from(conditions)))],
        )
        for i in range(draw(st.integers(0, 4)))
    ]
    everything = keys(resources)
    resources.append(
        provenance("prov", *draw(st.lists(st.sampled_from(sorted(everything)), min_size=1)))
    )
    return resources


@settings(max_examples=200, deadline=None)
@given(resources=record_graphs(), encounters_too=st.booleans())
def test_nothing_kept_refers_to_anything_withheld(
    resources: list[Resource], encounters_too: bool
) -> None:
    policy = SegmentationPolicy(withhold_encounters_of_sensitive_care=encounters_too)
    result = segment(resources, policy)
    withheld = keys(resources) - keys(result.kept)
    assert dangling(result.kept, withheld) == []
    assert result.withheld_count == len(withheld)
    for resource in resources:
        key = f"{resource['resourceType']}/{resource['id']}"
        if sensitive_categories_of(resource):
            assert key in withheld
        elif resource["resourceType"] in ("Condition", "Observation"):
            assert key not in withheld  # only meaning-carrying links spread withholding
    for kept in result.kept:
        assert "meta" not in kept  # no marker of any kind was added


# -- the sandbox population: every resource its generator labelled is caught by codes


SANDBOX_AS_OF = date(2025, 6, 30)
SANDBOX_MEMBERS = 300
SANDBOX_SEED = 1  # a seed whose 300 members include every kind of sensitive care
LABEL_CATEGORY = {
    "ETH": "substance-use",
    "HIV": "hiv",
    "PSY": "behavioral-health",
    "SEX": "reproductive-health",
}


@pytest.fixture(scope="module")
def sandbox() -> list[Resource]:
    network = build_network(3)
    payer = network.payers[0]
    population = generate_payer_population(
        network, payer, SANDBOX_MEMBERS, SANDBOX_SEED, SANDBOX_AS_OF
    )
    return list(population)


@pytest.fixture(scope="module")
def unlabelled(sandbox: list[Resource]) -> list[Resource]:
    return without_labels(sandbox)


def without_labels(resources: list[Resource]) -> list[Resource]:
    stripped = []
    for resource in resources:
        copied = copy.deepcopy(resource)
        if isinstance(copied.get("meta"), dict):
            copied["meta"].pop("security", None)
        stripped.append(copied)
    return stripped


def labels_of(resource: Resource) -> set[str]:
    return {c["code"] for c in (resource.get("meta") or {}).get("security", [])}


def test_the_sandbox_has_sensitive_care_of_every_kind(sandbox: list[Resource]) -> None:
    found = set().union(*(labels_of(r) for r in sandbox)) - {"R"}
    assert found == set(LABEL_CATEGORY), "grow SANDBOX_MEMBERS until every kind appears"


def test_every_labelled_sandbox_resource_is_withheld_on_codes_alone(
    sandbox: list[Resource], unlabelled: list[Resource]
) -> None:
    labelled_keys = keys([r for r in sandbox if labels_of(r)])
    result = segment(unlabelled)
    withheld = keys(sandbox) - keys(result.kept)
    assert withheld == labelled_keys  # nothing missed, nothing extra
    assert dangling(result.kept, withheld) == []
    assert result.unsegmentable_types == frozenset()
    assert supported_policies({r["resourceType"] for r in sandbox}) == set(ConsentPolicy)


def test_labelled_sandbox_resources_carry_their_category_in_their_own_codes(
    sandbox: list[Resource], unlabelled: list[Resource]
) -> None:
    """All but the sensitive visits' Encounters, whose only code is a generic visit type.

    Those are caught through the resources recorded in them (the test above); this pins
    exactly which resources rely on that, so a generator change shows up here.
    """
    stripped = {f"{r['resourceType']}/{r['id']}": r for r in unlabelled}
    relying_on_context: dict[str, int] = defaultdict(int)
    for resource in sandbox:
        labels = labels_of(resource) - {"R"}
        if not labels:
            continue
        key = f"{resource['resourceType']}/{resource['id']}"
        found = sensitive_categories_of(stripped[key])
        if not found:
            relying_on_context[resource["resourceType"]] += 1
            assert resource["type"][0]["coding"][0]["code"] == "185347001"
            continue
        assert found == {LABEL_CATEGORY[label] for label in labels}, key
    assert set(relying_on_context) == {"Encounter"}


def test_per_member_segmentation_agrees_and_keeps_a_trimmed_provenance(
    sandbox: list[Resource], unlabelled: list[Resource]
) -> None:
    """The ``$everything`` shape: one member's resources at a time."""
    by_member: dict[str, list[Resource]] = defaultdict(list)
    for resource in unlabelled:
        member = compartment_patient(resource)  # a Provenance's first target is the Patient
        if member is not None:
            by_member[member].append(resource)
    labelled_keys = keys([r for r in sandbox if labels_of(r)])
    sensitive_members = 0
    for resources in by_member.values():
        result = segment(resources)
        withheld = keys(resources) - keys(result.kept)
        assert withheld == keys(resources) & labelled_keys
        assert dangling(result.kept, withheld) == []
        if withheld:
            sensitive_members += 1
            (trimmed,) = [r for r in result.kept if r["resourceType"] == "Provenance"]
            targets = {target["reference"] for target in trimmed["target"]}
            assert targets == keys(result.kept) - {f"Provenance/{trimmed['id']}"}
    assert sensitive_members > 0


def test_labels_alone_give_the_same_answer(sandbox: list[Resource]) -> None:
    labelled_keys = keys([r for r in sandbox if labels_of(r)])
    assert keys(sandbox) - kept_keys(sandbox) == labelled_keys


def test_without_encounter_withholding_unlabelled_sensitive_visits_would_be_sent(
    sandbox: list[Resource], unlabelled: list[Resource]
) -> None:
    """Why ``withhold_encounters_of_sensitive_care`` defaults to on."""
    labelled = [r for r in sandbox if labels_of(r)]
    sent = kept_keys(unlabelled, STRIP_ONLY) & keys(labelled)
    assert sent and {key.split("/")[0] for key in sent} == {"Encounter"}
