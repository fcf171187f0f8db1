"""The ``$member-match`` shapes of HRex 1.0.0, 1.1.0 and 1.2.0, checked against the
StructureDefinitions and examples of each published guide (extracts under
``tests/data/fhir-profiles``): what we send in each version's shape, what we answer in
each, and that we read what each guide's own examples send and answer."""

from __future__ import annotations

from typing import Any

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.fhir.member_match import (
    build_member_match_response,
    parse_member_match_request,
    parse_member_match_response,
)
from payerbridge.routing.profiles import PROFILES, requested_shape
from tests.builders import an_exchange_request, member_match_parameters
from tests.fhir_profiles import load, structure, violations

VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
HREX = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition"


def in_profile(version: str) -> dict[str, Any]:
    return load(f"hrex-{version}", "StructureDefinition-hrex-parameters-member-match-in")


def out_profile(version: str) -> dict[str, Any]:
    return load(f"hrex-{version}", "StructureDefinition-hrex-parameters-member-match-out")


def an_answer(version: str | None, *, member_id: str | None = "p-1") -> dict[str, Any]:
    return build_member_match_response(
        identifier_system="https://old.example/fhir/NamingSystem/umb",
        identifier_value="UMB-1",
        member_id=member_id,
        shape=PROFILES.hrex[version] if version else None,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_the_request_we_send_in_each_shape_conforms_to_that_version(version: str) -> None:
    request = member_match_parameters(an_exchange_request(), hrex=version)
    assert violations(request, in_profile(version), f"hrex-{version}") == []
    assert request["meta"]["profile"] == [f"{HREX}/hrex-parameters-member-match-in|{version}"]
    assert requested_shape(request) is PROFILES.hrex[version]  # our server reads it back


@pytest.mark.parametrize("version", VERSIONS)
def test_our_well_known_location_rides_on_coverage_to_link_from_hrex_1_1(version: str) -> None:
    at = "https://new.example/.well-known/davinci-configuration"
    request = member_match_parameters(an_exchange_request(), hrex=version, wellknown=at)
    assert violations(request, in_profile(version), f"hrex-{version}") == []
    to_match, to_link = (p["resource"] for p in request["parameter"][1:3])
    assert "extension" not in to_match
    if version == "1.0.0":  # the extension came with 1.1; 1.0.0 kits want the link minimal
        assert "extension" not in to_link
    else:
        assert to_link["extension"] == [
            {"url": f"{HREX}/extension-CoverageDavinciWellknownLocation", "valueUri": at}
        ]
        definition = structure(f"hrex-{version}", to_link["meta"]["profile"][0])
        assert violations(to_link, definition, f"hrex-{version}") == []
    assert (
        "extension"
        not in member_match_parameters(an_exchange_request())["parameter"][2]["resource"]
    )


@pytest.mark.parametrize("on", [True, False])
def test_a_setting_decides_whether_we_name_our_location(on: bool) -> None:
    from payerbridge.config import Settings
    from payerbridge.wiring.ports import our_organization

    settings = Settings(public_base_url="https://new.example", wellknown_on_coverage=on)
    us = our_organization(settings)
    assert us.fhir_base == "https://new.example/fhir"
    at = "https://new.example/.well-known/davinci-configuration"
    assert us.wellknown == (at if on else None)


def test_the_hrex_1_0_0_shape_names_us_core_and_keeps_coverage_to_link_minimal() -> None:
    shaped = member_match_parameters(an_exchange_request(), hrex="1.0.0")
    patient, _, to_link, _ = (p["resource"] for p in shaped["parameter"])
    assert patient["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|3.1.1"
    ]
    assert patient["identifier"][0]["type"]["coding"][0]["code"] == "MB"
    # Compatibility note 5: HRex 1.0.0 test kits reject relationship and period here.
    assert sorted(to_link) == [
        "beneficiary",
        "id",
        "identifier",
        "meta",
        "payor",
        "resourceType",
        "status",
    ]
    current = member_match_parameters(an_exchange_request())
    current_link = current["parameter"][2]["resource"]
    assert {"relationship", "period"} <= set(current_link)  # HRex 1.1 requires relationship


def test_a_request_missing_what_hrex_1_0_0_requires_is_caught() -> None:
    request = member_match_parameters(an_exchange_request(), hrex="1.0.0")
    request["parameter"] = [p for p in request["parameter"] if p["name"] != "Consent"]
    del request["parameter"][0]["resource"]["identifier"]
    found = violations(request, in_profile("1.0.0"), "hrex-1.0.0")
    assert any(line.startswith("Parameters.parameter:Consent: 0 found") for line in found)
    assert any("Patient.identifier: 0 found, at least 1" in line for line in found)
    # HRex 1.1 made both optional (what it finds is the 1.0.0 CoverageToLink's
    # missing relationship, which 1.1 requires).
    later = violations(request, in_profile("1.1.0"), "hrex-1.1.0")
    assert later == [
        "Parameters.parameter:CoverageToLink.resource → Coverage.relationship: 0 found, "
        "at least 1 required"
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_answer_in_each_shape_conforms_to_that_version(version: str) -> None:
    answer = an_answer(version)
    assert violations(answer, out_profile(version), f"hrex-{version}") == []
    names = [p["name"] for p in answer["parameter"]]
    assert names == (
        ["MemberIdentifier"] if version == "1.0.0" else ["MemberIdentifier", "MemberId"]
    )


def test_the_answer_to_a_caller_naming_no_version_passes_every_version_without_member_id() -> None:
    bare = an_answer(None, member_id=None)
    for version in VERSIONS:
        assert violations(bare, out_profile(version), f"hrex-{version}") == []
    with_member_id = an_answer(None)
    assert violations(with_member_id, out_profile("1.1.0"), "hrex-1.1.0") == []
    found = violations(with_member_id, out_profile("1.0.0"), "hrex-1.0.0")
    assert "Parameters.parameter: 2 found, at most 1 allowed" in found  # why 1.0.0 is asked


def test_an_identifier_typed_for_the_wrong_version_is_caught() -> None:
    answer = an_answer("1.0.0")  # typed MB only
    found = violations(answer, out_profile("1.1.0"), "hrex-1.1.0")
    assert any("valueIdentifier.type" in line and "UMB" in line for line in found)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_guides_own_examples_are_read(version: str) -> None:
    package = f"hrex-{version}"
    example = load(package, "example/Parameters-member-match-in")
    if version != "1.0.0":
        # The 1.1.0 and 1.2.0 examples point at the member with absolute URLs, against
        # the guides' own mm-6 ("SHALL be 'local' references"): we refuse that with the
        # rule's name, and read the rest.
        with pytest.raises(InvalidInput) as refused:
            parse_member_match_request(example)
        refused_elements = {i.text.split(" must ")[0] for i in refused.value.issues}
        assert {"CoverageToLink.beneficiary", "Consent.patient"} <= refused_elements
        assert all("HRex mm-6" in i.text for i in refused.value.issues)
        for parameter in example["parameter"][1:]:
            for element in ("beneficiary", "patient"):
                if element in parameter["resource"]:
                    parameter["resource"][element] = {"reference": "Patient/1"}
    parsed = parse_member_match_request(example)
    assert parsed.patient["birthDate"] and parsed.coverage_to_match["resourceType"] == "Coverage"
    answer_example = load(package, "example/Parameters-member-match-out")
    assert parse_member_match_response(answer_example).identifier_value
    assert violations(answer_example, out_profile(version), package) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_the_profiles_data_says_what_each_versions_definitions_say(version: str) -> None:
    shape = PROFILES.hrex[version]
    package = f"hrex-{version}"
    request, answer = in_profile(version), out_profile(version)
    assert shape.parameters_profile == f"{request['url']}|{request['version']}"
    elements = {e["id"]: e for e in request["differential"]["element"]}
    assert shape.consent_required == (elements["Parameters.parameter:Consent"]["min"] >= 1)
    patient = elements["Parameters.parameter:memberPatient.resource"]["type"][0]["profile"][0]
    assert shape.patient_profile.partition("|")[0] == patient
    coverage = elements["Parameters.parameter:CoverageToMatch.resource"]["type"][0]["profile"][0]
    assert shape.coverage_profile.partition("|")[0] == coverage
    assert structure(package, coverage)["version"] == shape.coverage_profile.partition("|")[2]
    out = {e["id"]: e for e in answer["differential"]["element"]}
    assert shape.member_id == ("Parameters.parameter:MemberId" in out)
    pattern = next(
        e["patternCodeableConcept"] for i, e in out.items() if "patternCodeableConcept" in e
    )
    typed = {(c["system"], c["code"]) for c in shape.member_identifier_type}
    assert typed == {(c["system"], c["code"]) for c in pattern["coding"]}


@pytest.mark.parametrize("version", ["2.0.0", "2.1.0", "2.2.0"])
def test_each_pdex_version_builds_on_the_hrex_and_bulk_form_its_package_declares(
    version: str,
) -> None:
    profile = PROFILES.pdex[version]
    package = load(f"pdex-{version}", "package")
    declared = package["dependencies"]["hl7.fhir.us.davinci-hrex"]
    if version == "2.1.0":
        # The published 2.1.0 package still names HRex 1.0.0, but its text requires the
        # MemberId answer (FHIR-47053), which only HRex 1.1.0 defines; the guide's
        # source at the 2.1.0 tag depends on 1.1.0. The text wins.
        assert declared == "1.0.0" and profile.hrex == "1.1.0"
        assert PROFILES.hrex[profile.hrex].member_id
    else:
        assert profile.hrex == declared
    definitions = {
        "2.1.0": "OperationDefinition-bulk-member-match",
        "2.2.0": "OperationDefinition-BulkMemberMatch",
    }
    if version not in definitions:
        assert profile.bulk_output is None  # PDex 2.0 has no bulk member match
        return
    operation = load(f"pdex-{version}", definitions[version])
    groups = [p for p in operation["parameter"] if p["use"] == "out" and p.get("type") == "Group"]
    assert profile.bulk_output == ("Group" if groups else "Parameters")


def test_a_caller_is_answered_in_the_shape_its_request_names() -> None:
    request = member_match_parameters(an_exchange_request(), hrex="1.1.0")
    assert parse_member_match_request(request).shape is PROFILES.hrex["1.1.0"]
    request["meta"] = {}  # names no version; a US Core MemberPatient still means 1.0.0
    assert parse_member_match_request(request).shape is None
    request["parameter"][0]["resource"]["meta"] = {
        "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]
    }
    assert parse_member_match_request(request).shape is PROFILES.hrex["1.0.0"]


def test_a_request_naming_hrex_1_0_0_without_consent_is_refused_with_the_version_named() -> None:
    request = member_match_parameters(an_exchange_request(), hrex="1.0.0")
    assert request["parameter"][3]["resource"]["meta"]["profile"] == [
        "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-consent|1.0.0"
    ]
    request["parameter"] = request["parameter"][:3]
    with pytest.raises(InvalidInput) as caught:
        parse_member_match_request(request)
    assert [i.text for i in caught.value.issues] == [
        "parameter 'Consent' is required by HRex 1.0.0, which this request names in "
        "meta.profile or by its MemberPatient's profile"
    ]
    later = member_match_parameters(an_exchange_request(), hrex="1.1.0")
    later["parameter"] = later["parameter"][:3]
    assert parse_member_match_request(later).consent is None  # optional since 1.1.0
