"""The pharmacy mappings (ncpdp-d0-eob, pharmacy-claims-extract): CARIN BB 2.2.0
Pharmacy-Basis EOBs without amounts, in the compartment of the member the 834 enrolls,
with the PDex source format of what they read, and HIV PrEP and MOUD withheld under a
``regular`` consent (their examples are run against their expected outputs with every
other mapping's, in test_mapping.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.backends.examples import run_example
from payerbridge.backends.ingestion import MadeFromSource
from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, Mapping, load_mapping
from payerbridge.backends.model import SourceRecord
from payerbridge.backends.readers import read_stream
from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.release import release
from payerbridge.fhir import codes
from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.fhir.provenance import provenance_by
from payerbridge.fhir.resources import compartment_patient
from payerbridge.routing.model import Organization
from tests import fhir_profiles
from tests.unit.backends.ncpdp_files import a_fill, insurance, patient, transmission
from tests.unit.backends.test_x12_mappings import enrollment_834, mapped

D0 = BUILT_IN_MAPPINGS / "ncpdp-d0-eob/1.0.0"
EXTRACT = BUILT_IN_MAPPINGS / "pharmacy-claims-extract/1.0.0"
PHARMACY_BASIS = (
    "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Pharmacy-Basis"
)
NDC = "http://hl7.org/fhir/sid/ndc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# The examples' sensitive fills: HIV PrEP (Truvada) and MOUD (Suboxone film).
PREP, MOUD = "61958070101", "12496120803"


def example_eobs(directory: Path) -> list[dict[str, Any]]:
    mapping = load_mapping(directory)
    return [
        resource
        for example in mapping.examples
        for resource in run_example(mapping, example).actual["resources"]
    ]


def ndc_of(eob: dict[str, Any]) -> str | None:
    codings = eob["item"][0]["productOrService"]["coding"]
    return next((c["code"] for c in codings if c["system"] == NDC), None)


@pytest.fixture(scope="module")
def eobs() -> dict[str, list[dict[str, Any]]]:
    return {"d0": example_eobs(D0), "extract": example_eobs(EXTRACT)}


def test_every_pharmacy_eob_validates_against_carin_bb_2_2_0_pharmacy_basis(
    eobs: dict[str, list[dict[str, Any]]],
) -> None:
    """Against the profile's snapshot, bindings and invariants (the checker every
    resource passes before it leaves: ``fhir/packages/carin-bb-2.2.0.json.gz``) and
    against the differential extracted from the CARIN BB 2.2.0 package (a rebuild from
    the IG source at tag 2.2.0: tests/data/fhir-profiles/README.md)."""
    checker = ProfileChecker.bundled()
    assert fhir_profiles.load("carin-bb-2.2.0", "package")["version"] == "2.2.0"
    differential = fhir_profiles.structure("carin-bb-2.2.0", PHARMACY_BASIS)
    checked = 0
    for resources in eobs.values():
        for eob in resources:
            assert eob["meta"]["profile"] == [f"{PHARMACY_BASIS}|2.2.0"]
            stamped = {**eob, "meta": {**eob["meta"], "lastUpdated": "2026-01-01T00:00:00Z"}}
            assert [i.to_json() for i in checker.check(stamped)] == [], eob["id"]
            assert fhir_profiles.violations(eob, differential, "carin-bb-2.2.0") == []
            checked += 1
    assert checked >= 10


def test_no_amount_leaves_a_pharmacy_claim(eobs: dict[str, list[dict[str, Any]]]) -> None:
    for eob in eobs["d0"] + eobs["extract"]:
        assert not {"total", "payment", "payee", "benefitBalance"} & set(eob)
        for item in eob["item"]:
            assert not {"net", "unitPrice", "factor"} & set(item)
            assert all("amount" not in a for a in item.get("adjudication", []))
        assert all("amount" not in a for a in eob["adjudication"])
    # The extract's ingredient cost and copay columns and the D.0 pricing segment's
    # amounts are nowhere in what is given.
    given = orjson.dumps(eobs).decode()
    assert not [amount for amount in ("1934.5", "410.0", "1250{", "2000{") if amount in given]


def test_the_drug_is_the_ndc_with_the_rxnorm_when_the_extract_gives_it(
    eobs: dict[str, list[dict[str, Any]]],
) -> None:
    (d0,) = [e for e in eobs["d0"] if ndc_of(e) == PREP]
    (extract,) = [e for e in eobs["extract"] if ndc_of(e) == PREP]
    assert d0["item"][0]["productOrService"] == {"coding": [{"system": NDC, "code": PREP}]}
    assert extract["item"][0]["productOrService"] == {
        "coding": [{"system": NDC, "code": PREP}, {"system": RXNORM, "code": "476556"}],
        "text": "TRUVADA 200-300 MG TABLET",
    }
    # 5-3-2 with hyphens, and 4-4-2, are read as the 11 digits of the 5-4-2 form.
    assert {ndc_of(e) for e in eobs["extract"]} >= {"68180051301", "00093310901"}


def test_a_pharmacy_claim_lands_in_the_compartment_of_the_member_the_834_enrolls(
    tmp_path: Path, eobs: dict[str, list[dict[str, Any]]]
) -> None:
    """The subscriber by the cardholder (member) id, the dependent by it, the birth date
    and the first name, as the 834 and 837 mappings name them."""
    (tmp_path / "e.834").write_text(enrollment_834("M0000001", ("SAM", "20100601", "19")))
    patients = [
        r["id"]
        for r in mapped(
            load_mapping(BUILT_IN_MAPPINGS / "x12-834-enrollment/1.0.0"), tmp_path / "e.834"
        )
        if r["resourceType"] == "Patient"
    ]
    subscriber, dependent = (f"Patient/{p}" for p in patients)
    for resources in eobs.values():
        members = {e["insurance"][0]["coverage"]["identifier"]["value"] for e in resources}
        ours = [
            e
            for e in resources
            if e["insurance"][0]["coverage"]["identifier"]["value"] == "M0000001"
        ]
        assert "M0000001" in members
        assert {e["patient"]["reference"] for e in ours} == {subscriber, dependent}
        for eob in ours:
            assert f"Patient/{compartment_patient(eob)}" in (subscriber, dependent)
        (amoxicillin,) = {e["id"]: e for e in ours if ndc_of(e) == "00093310901"}.values()
        assert amoxicillin["patient"]["reference"] == dependent


@pytest.mark.parametrize(("directory", "source_format"), [(D0, "ncpdp"), (EXTRACT, "customtx")])
def test_the_provenance_names_the_pdex_source_format(directory: Path, source_format: str) -> None:
    mapping = load_mapping(directory)
    made = provenance_by(Organization("Plan", "1245319599"))
    target = {"resourceType": "ExplanationOfBenefit", "id": "e1"}
    provenance = made(
        MadeFromSource("p1", [target], mapping, "rx", datetime(2026, 1, 1, tzinfo=UTC))
    )
    (entity,) = provenance["entity"]
    (extension,) = entity["extension"]
    assert extension["url"] == codes.PROVENANCE_SOURCE_FORMAT
    assert extension["valueCodeableConcept"]["coding"] == [
        {"system": codes.PROVENANCE_PAYER_DATA_SOURCE, "code": source_format}
    ]


class Shared:
    """No shared resources: a pharmacy EOB refers to its providers by identifier."""

    def read_many(self, refs: list[str]) -> list[dict[str, Any]]:
        return []


def keys(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


@pytest.mark.parametrize("kind", ["d0", "extract"])
def test_a_regular_consent_withholds_prep_and_moud_and_releases_the_other_fills(
    eobs: dict[str, list[dict[str, Any]]], kind: str
) -> None:
    """Judged by the NDC the EOB's item carries (and the RxNorm beside it), through the
    disclosure's release as every read, search and $everything page is."""
    member = "mpnkyw2hqi6h6l42nk3xyegeljrox4yy"  # M0000001's Patient id in namespace plan
    claims = {e["id"]: e for e in eobs[kind] if e["patient"]["reference"] == f"Patient/{member}"}
    sensitive = {
        f"ExplanationOfBenefit/{i}" for i, e in claims.items() if ndc_of(e) in (PREP, MOUD)
    }
    assert len(sensitive) == 2
    records = [{"resourceType": "Patient", "id": member}, *claims.values()]
    regular = release(records, Shared(), ConsentPolicy.REGULAR)
    assert keys(regular.resources) == keys(records) - sensitive
    assert regular.withheld_count == 2
    everything = release(records, Shared(), ConsentPolicy.SENSITIVE)
    assert keys(everything.resources) == keys(records)


def test_a_compound_with_a_sensitive_ingredient_is_withheld_under_regular() -> None:
    """The ingredients' NDCs (item.detail) are judged like the item's own."""
    mapping = load_mapping(D0)
    body = (D0 / "examples/compound.d0").read_text().replace("00071015523", MOUD)
    (compound,) = records(mapping, body)
    assert compound["item"][0]["detail"][1]["productOrService"]["coding"][0]["code"] == MOUD
    records_ = [{"resourceType": "Patient", "id": "p"}, compound]
    regular = release(records_, Shared(), ConsentPolicy.REGULAR)
    assert keys(regular.resources) == {"Patient/p"}


def test_a_rebill_replaces_the_claim_it_rebills() -> None:
    mapping = load_mapping(D0)
    billed = transmission(a_fill("RX9", "00071015523"))
    rebilled = transmission(a_fill("RX9", "00071015523", days="60"), transaction="B3")
    first, second = records(mapping, f"{billed}\n{rebilled}\n")
    assert first["id"] == second["id"]
    assert second["supportingInfo"][0]["valueQuantity"] == {"value": 60}


def test_a_claim_that_does_not_say_whose_it_is_is_refused_unless_every_member_has_an_own_id() -> (
    None
):
    mapping = load_mapping(D0)
    body = transmission(
        a_fill("RX9", "00071015523"), common=patient() + insurance(relationship="0")
    )
    with pytest.raises(Exception, match="306-C6"):
        records(mapping, body)
    parameters = {**mapping.input_options["parameters"], "cardholder_id_is_member_id": True}
    (eob,) = records(mapping, body, parameters=parameters)
    assert eob["patient"]["reference"] == "Patient/mpnkyw2hqi6h6l42nk3xyegeljrox4yy"


def records(mapping: Mapping, body: str, **options: Any) -> list[dict[str, Any]]:
    resources = []
    for item in read_stream(
        "ncpdp", io.BytesIO(body.encode()), "t.d0", {**mapping.input_options, **options}
    ):
        assert isinstance(item, SourceRecord), item
        resources += mapping.apply(item.data, source_id="example", namespace="plan")
    return resources
