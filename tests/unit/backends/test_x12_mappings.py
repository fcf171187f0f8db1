"""The X12 mappings' own examples map to what they expect (x12-834-enrollment,
x12-837-eob, x12-278-prior-auth): ``examples/<case>.<ext>`` read with the mapping's
reader and mapped gives ``<case>.expected.json`` (``{"resources": [...], "problems":
[...]}``). Set PAYERBRIDGE_RECORD_EXAMPLES=1 to write the expected files again, then
read the diff."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, Mapping, RecordNotMapped, load_mapping
from payerbridge.backends.model import Location, RecordProblem
from payerbridge.backends.readers import read_file

X12_MAPPINGS = ["x12-837-eob/1.0.0", "x12-834-enrollment/1.0.0", "x12-278-prior-auth/1.0.0"]


def outcome(mapping: Mapping, example: Path) -> dict[str, Any]:
    """What the engine gives for one example file: its resources and problems."""
    resources: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for item in read_file(mapping.input, example, mapping.input_options):
        if isinstance(item, RecordProblem):
            problems.append(item.to_json())
            continue
        try:
            resources += mapping.apply(item.data, source_id="example", namespace="example")
        except RecordNotMapped as exc:
            problem = RecordProblem(item.location, exc.text, exc.code, item.key)
            problems.append(problem.to_json())
    return {"resources": resources, "problems": problems}


def _cases() -> list[Any]:
    cases = []
    for name in X12_MAPPINGS:
        directory = BUILT_IN_MAPPINGS / name
        if not directory.exists():
            continue
        for example in load_mapping(directory).examples:
            cases.append(pytest.param(directory, example.input, id=f"{name}:{example.name}"))
    return cases


@pytest.mark.parametrize(("directory", "example"), _cases())
def test_an_example_maps_to_what_it_expects(directory: Path, example: Path) -> None:
    mapping = load_mapping(directory)
    got = outcome(mapping, example)
    expected_path = example.with_name(example.name.split(".", 1)[0] + ".expected.json")
    if os.environ.get("PAYERBRIDGE_RECORD_EXAMPLES"):
        expected_path.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2) + b"\n")
    assert got == orjson.loads(expected_path.read_bytes())


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
