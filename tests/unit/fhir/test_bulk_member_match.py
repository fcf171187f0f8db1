"""PDex ``$bulk-member-match`` Parameters and result Groups, against the guide's own
examples and profiles (PDex 2.1.0 as published, 2.2.0 pre-publication)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.fhir.bulk_member_match import (
    RESULT_SYSTEM,
    MatchResult,
    MemberResult,
    member_bundle,
    parameters_form,
    parse_bulk_member_match_request,
    read_result_groups,
    result_groups,
)
from payerbridge.routing.model import Organization
from tests import fhir_profiles

US = Organization("Old Health Plan", "9876543210")
THEM = Organization("New Health Plan", "0123456789")
IDS = {
    MatchResult.MATCHED: "g-match",
    MatchResult.NOT_MATCHED: "g-nomatch",
    MatchResult.CONSENT_CONSTRAINED: "g-consent",
}


def official_request() -> dict[str, Any]:
    return fhir_profiles.load("pdex-2.1.0", "example/Parameters-payer-multi-member-match-in")


def bundles(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in request["parameter"] if p["name"] == "MemberBundle"]


def part(bundle: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in bundle["part"] if p["name"] == name)


def groups_for(*outcomes: tuple[int, MatchResult, str | None]) -> list[dict[str, Any]]:
    members = parse_bulk_member_match_request(official_request())
    results = [MemberResult(members[i], result, ours) for i, result, ours in outcomes]
    return result_groups(
        results, group_ids=IDS, requester=THEM, us=US, matched_at=datetime(2027, 1, 2, tzinfo=UTC)
    )


def test_the_official_2_1_request_is_read_one_member_per_bundle() -> None:
    members = parse_bulk_member_match_request(official_request())
    assert [m.position for m in members] == [0, 1]
    assert [m.patient_id for m in members] == ["1", "2"]
    assert all(m.request.consent is not None for m in members)
    assert all(m.request.coverage_to_link is not None for m in members)


def test_the_2_2_pre_publication_example_breaks_hrex_mm_6_and_is_refused_saying_so() -> None:
    """The 2.2.0 build's example gives its Patient the id patient-1 and points the
    Coverages at Patient/1 (the published 2.1.0 example is consistent)."""
    request = fhir_profiles.load("pdex-2.2.0", "example/Parameters-payer-multi-member-match-in")
    with pytest.raises(InvalidInput) as refused:
        parse_bulk_member_match_request(request)
    texts = [issue.text for issue in refused.value.issues]
    assert texts and all(t.startswith("MemberBundle 0:") and "mm-6" in t for t in texts)
    assert refused.value.issues[0].expression == (
        "Parameters.parameter[0].part.CoverageToMatch.beneficiary.reference"
    )


def test_every_bundles_issues_are_named_with_their_bundle() -> None:
    request = official_request()
    first, second = bundles(request)
    first["part"] = [p for p in first["part"] if p["name"] != "Consent"]
    part(second, "MemberPatient")["resource"].pop("birthDate")
    request["parameter"].append({"name": "Member", "part": []})
    with pytest.raises(InvalidInput) as refused:
        parse_bulk_member_match_request(request)
    found = [(i.text.split(":")[0], i.expression, i.code) for i in refused.value.issues]
    assert found == [
        ("MemberBundle 0", "Parameters.parameter[0].part", "required"),
        ("MemberBundle 1", "Parameters.parameter[1].part.MemberPatient.birthDate", "required"),
        (
            "unknown parameter 'Member'; $bulk-member-match accepts only MemberBundle",
            "Parameters.parameter[2].name",
            None,
        ),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Bundle"},
        {"resourceType": "Parameters"},
        {"resourceType": "Parameters", "parameter": []},
        [],
    ],
)
def test_not_a_bulk_request_at_all(body: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_bulk_member_match_request(body)


def test_two_different_patients_under_one_id_are_refused() -> None:
    request = official_request()
    second = part(bundles(request)[1], "MemberPatient")["resource"]
    second["id"] = "1"
    for name in ("CoverageToMatch", "CoverageToLink"):
        part(bundles(request)[1], name)["resource"]["beneficiary"]["reference"] = "Patient/1"
    part(bundles(request)[1], "Consent")["resource"]["patient"]["reference"] = "Patient/1"
    with pytest.raises(InvalidInput, match="not valid") as refused:
        parse_bulk_member_match_request(request)
    assert "MemberBundles 0, 1 submit different Patients with one id '1'" in (
        refused.value.issues[0].text
    )


def test_the_same_patient_with_two_coverages_is_two_entries_told_apart_by_coverage() -> None:
    request = official_request()
    again = copy.deepcopy(bundles(request)[0])
    part(again, "CoverageToMatch")["resource"]["id"] = "other-coverage"
    request["parameter"].append(again)
    members = parse_bulk_member_match_request(request)
    results = [
        MemberResult(members[0], MatchResult.MATCHED, "p100"),
        MemberResult(members[2], MatchResult.MATCHED, "p100"),
    ]
    (group,) = result_groups(
        results, group_ids=IDS, requester=THEM, us=US, matched_at=datetime(2027, 1, 2, tzinfo=UTC)
    )
    assert [c["id"] for c in group["contained"]] == ["1", "9876B1", "other-coverage"]
    coverages = [m["entity"]["extension"][1]["valueReference"] for m in group["member"]]
    assert coverages == [{"reference": "#9876B1"}, {"reference": "#other-coverage"}]
    assert fhir_profiles.violations(group, _profile("2.2.0", "match"), "pdex-2.2.0") == []


def _profile(version: str, kind: str) -> dict[str, Any]:
    name = "pdex-member-match-group" if kind == "match" else "pdex-member-no-match-group"
    return fhir_profiles.load(f"pdex-{version}", f"StructureDefinition-{name}")


@pytest.mark.parametrize("version", ["2.1.0", "2.2.0"])
def test_the_three_groups_conform_to_both_versions_profiles(version: str) -> None:
    matched, not_matched, constrained = (
        groups_for(
            (0, MatchResult.MATCHED, "p1001"),
            (1, MatchResult.NOT_MATCHED, None),
        )
        + groups_for((1, MatchResult.CONSENT_CONSTRAINED, None))[1:]
    )
    assert fhir_profiles.violations(matched, _profile(version, "match"), f"pdex-{version}") == []
    for group in (not_matched, constrained):
        assert (
            fhir_profiles.violations(group, _profile(version, "nomatch"), f"pdex-{version}") == []
        )
    assert [g["code"]["coding"][0]["code"] for g in (matched, not_matched, constrained)] == [
        "match",
        "nomatch",
        "consentconstraint",
    ]


def test_groups_carry_what_the_guide_asks() -> None:
    matched, not_matched = groups_for(
        (0, MatchResult.MATCHED, "p1001"), (1, MatchResult.NOT_MATCHED, None)
    )
    assert matched["id"] == "g-match" and not_matched["id"] == "g-nomatch"
    assert matched["member"] == [
        {
            "entity": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
                        "base-ext-match-parameters",
                        "valueReference": {"reference": "#1"},
                    }
                ],
                "reference": "Patient/p1001",
            }
        }
    ]
    assert not_matched["member"][0]["entity"]["reference"] == "#2"
    submitted = part(bundles(official_request())[0], "MemberPatient")["resource"]
    assert matched["contained"] == [submitted]  # id, identifiers, demographics as sent
    assert matched["characteristic"] == [
        {
            "code": {"coding": [{"system": RESULT_SYSTEM, "code": "match", "display": "Matched"}]},
            "valueReference": {
                "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": THEM.npi}
            },
            "exclude": False,
            "period": {"start": "2027-01-02"},
        }
    ]
    assert matched["managingEntity"]["identifier"]["value"] == US.npi
    assert (matched["type"], matched["actual"], matched["quantity"]) == ("person", True, 1)


def test_matched_members_is_always_there_even_empty_the_others_only_with_members() -> None:
    (matched,) = result_groups(
        [], group_ids=IDS, requester=THEM, us=US, matched_at=datetime(2027, 1, 2, 3, tzinfo=UTC)
    )
    assert matched["meta"]["lastUpdated"] == "2027-01-02T03:00:00Z"  # we authored it then
    assert matched["code"]["coding"][0]["code"] == "match"
    assert "member" not in matched and matched["quantity"] == 0
    assert fhir_profiles.violations(matched, _profile("2.2.0", "match"), "pdex-2.2.0") == []


def test_submitted_meta_and_nested_contained_are_stripped() -> None:
    request = official_request()
    patient = part(bundles(request)[0], "MemberPatient")["resource"]
    patient["meta"] = {
        "versionId": "7",
        "lastUpdated": "2026-01-01T00:00:00Z",
        "security": [{"code": "R"}],
        "profile": ["http://example.org/p"],
    }
    patient["contained"] = [{"resourceType": "Organization", "id": "o"}]
    members = parse_bulk_member_match_request(request)
    (matched,) = result_groups(
        [MemberResult(members[0], MatchResult.MATCHED, "p1")],
        group_ids=IDS,
        requester=THEM,
        us=US,
        matched_at=datetime(2027, 1, 2, tzinfo=UTC),
    )
    assert matched["contained"][0]["meta"] == {"profile": ["http://example.org/p"]}
    assert "contained" not in matched["contained"][0]


@pytest.mark.parametrize(
    ("version", "names"),
    [
        ("2.1", ["ResourceIdentifier", "ConsentConstraint"]),
        ("2.2", ["MatchedMembers", "ConsentConstrainedMembers"]),
    ],
)
def test_the_parameters_form_names_the_groups_as_each_version_does(
    version: str, names: list[str]
) -> None:
    """2.1.0's bundle-out profile fixes ResourceIdentifier / NoMatch / ConsentConstraint
    (its own example agrees); 2.2's OperationDefinition names the outputs MatchedMembers /
    NonMatchedMembers / ConsentConstrainedMembers."""
    groups = groups_for((0, MatchResult.MATCHED, "p1"), (1, MatchResult.CONSENT_CONSTRAINED, None))
    envelope = parameters_form(groups, version)
    assert [p["name"] for p in envelope["parameter"]] == names
    package = f"pdex-{version}.0"
    profile = fhir_profiles.load(
        package, "StructureDefinition-pdex-parameters-multi-member-match-bundle-out"
    )
    assert fhir_profiles.violations(envelope, profile, package) == []
    example = fhir_profiles.load(package, "example/Parameters-payer-multi-member-match-out")
    assert set(names) <= {p["name"] for p in example["parameter"]}  # the guide's own example


def test_a_result_names_our_patient_exactly_when_matched() -> None:
    (member, _) = parse_bulk_member_match_request(official_request())
    with pytest.raises(ValueError, match="matched"):
        MemberResult(member, MatchResult.MATCHED)
    with pytest.raises(ValueError, match="matched"):
        MemberResult(member, MatchResult.NOT_MATCHED, "p1")


def test_a_single_request_becomes_a_bundle_whose_patient_every_part_points_at() -> None:
    single = {
        "resourceType": "Parameters",
        "parameter": [part for part in bundles(official_request())[0]["part"]],
    }
    bundle = member_bundle(single, "N-42")
    request = {"resourceType": "Parameters", "parameter": [bundle]}
    [member] = parse_bulk_member_match_request(request)
    assert member.patient_id == "N-42"
    assert member.request.coverage_to_match["beneficiary"]["reference"] == "Patient/N-42"
    assert single["parameter"][0]["resource"]["id"] == "1"  # the original is untouched


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_the_answer_is_read_back_member_by_member_in_either_form(version: str) -> None:
    groups = groups_for(
        (0, MatchResult.MATCHED, "p1001"),
        (1, MatchResult.NOT_MATCHED, None),
    )
    answer = [parameters_form(groups, version)] if version == "2.1" else groups
    assert read_result_groups(answer) == [
        ("1", MatchResult.MATCHED, "p1001"),
        ("2", MatchResult.NOT_MATCHED, None),
    ]


def test_a_result_that_is_not_a_coded_group_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Group"):
        read_result_groups([{"resourceType": "Patient"}])
    with pytest.raises(ValueError, match="code"):
        read_result_groups([{"resourceType": "Group", "code": {"coding": []}}])
