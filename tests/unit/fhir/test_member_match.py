from datetime import date
from typing import Any

import pytest

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.errors import InvalidInput, PartnerRejected
from payerbridge.fhir.member_match import (
    build_member_match_response,
    card_from_coverage,
    parse_member_match_request,
    parse_member_match_response,
)
from tests.builders import an_exchange_request, member_match_parameters

HREX_TEMP = "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp"


def a_request() -> dict[str, Any]:
    return member_match_parameters(an_exchange_request())


def test_what_we_send_is_what_we_accept() -> None:
    parsed = parse_member_match_request(a_request())
    assert parsed.patient["birthDate"] == "1980-02-03"
    assert card_from_coverage(parsed.coverage_to_match).member_id == "M123"
    assert parsed.consent is not None and parsed.coverage_to_link is not None
    consent = parsed.consent
    assert consent["provision"]["period"] == {"start": "2026-01-01", "end": "2099-01-01"}
    roles = [a["role"]["coding"][0]["code"] for a in consent["provision"]["actor"]]
    assert roles == ["performer", "IRCP"]
    assert parsed.coverage_to_link["payor"][0]["identifier"]["value"] == "1234567893"


def test_wrong_resource_type_is_refused() -> None:
    with pytest.raises(InvalidInput, match="Parameters"):
        parse_member_match_request({"resourceType": "Patient"})


def test_every_problem_is_reported_at_once() -> None:
    body = a_request()
    body["parameter"] = [p for p in body["parameter"] if p["name"] != "CoverageToMatch"]
    body["parameter"].append({"name": "Surprise", "valueString": "x"})
    body["parameter"][0]["resource"].pop("birthDate")
    with pytest.raises(InvalidInput) as caught:
        parse_member_match_request(body)
    texts = " | ".join(i.text for i in caught.value.issues)
    assert "CoverageToMatch' is required" in texts
    assert "unknown parameter 'Surprise'" in texts
    assert "birthDate is required" in texts


def test_references_must_be_local_to_member_patient_mm6() -> None:
    body = a_request()
    body["parameter"][1]["resource"]["beneficiary"] = {"reference": "http://x/Patient/1"}
    with pytest.raises(InvalidInput) as caught:
        parse_member_match_request(body)
    assert caught.value.issues[0].expression == "CoverageToMatch.beneficiary.reference"


def test_response_carries_umb_and_mb_codings_and_member_id() -> None:
    body = build_member_match_response(
        identifier_system="urn:x", identifier_value="U1", member_id="p1"
    )
    identifier = body["parameter"][0]["valueIdentifier"]
    systems = {(c["system"], c["code"]) for c in identifier["type"]["coding"]}
    assert (HREX_TEMP, "UMB") in systems
    assert ("http://terminology.hl7.org/CodeSystem/v2-0203", "MB") in systems
    assert parse_member_match_response(body).member_ref == "Patient/p1"
    without = build_member_match_response(
        identifier_system="urn:x", identifier_value="U1", member_id=None
    )
    assert [p["name"] for p in without["parameter"]] == ["MemberIdentifier"]


def test_a_response_without_identifier_is_rejected() -> None:
    with pytest.raises(PartnerRejected):
        parse_member_match_response({"resourceType": "Parameters", "parameter": []})


def test_exchange_request_needs_a_card_id_and_an_ordered_consent() -> None:
    raw = an_exchange_request()
    raw["old_coverage"] = {"relationship": "self"}
    raw["consent"]["end"] = "2000-01-01"
    with pytest.raises(ValueError) as caught:
        ExchangeCreate.model_validate(raw)
    assert "member_id or subscriber_id" in str(caught.value)
    assert "end is before" in str(caught.value)
    assert ExchangeCreate.model_validate(
        an_exchange_request()
    ).to_domain().member.birth_date == date(1980, 2, 3)


def test_demographics_only_requests_are_accepted_unless_strict() -> None:
    """Members often cannot give the old card's numbers (us-core-15 is HRex 1.1's): such
    requests are matched on demographics, and a strict deployment refuses them."""
    request = a_request()
    coverage = request["parameter"][1]["resource"]
    del coverage["identifier"], coverage["subscriberId"]
    assert parse_member_match_request(request).coverage_to_match is coverage
    with pytest.raises(InvalidInput) as refused:
        parse_member_match_request(request, strict=True)
    assert refused.value.issues[0].expression == "CoverageToMatch"
    assert "us-core-15" in refused.value.issues[0].text
    parse_member_match_request(a_request(), strict=True)  # a card number is enough
