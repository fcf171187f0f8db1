"""The X12 mappings (x12-834-enrollment, x12-837-eob, x12-278-prior-auth): each has
examples, and what they give keeps the payer-to-payer rules (their examples are run
against their expected outputs with every other mapping's, in test_mapping.py;
``payerbridge mappings test --record`` writes the expected files again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from payerbridge.backends.examples import run_example
from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, Mapping, load_mapping
from payerbridge.backends.model import Location, RecordProblem

X12_MAPPINGS = ["x12-837-eob/1.0.0", "x12-834-enrollment/1.0.0", "x12-278-prior-auth/1.0.0"]


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
