"""Write the examples of the mapping fhir-server-quirks@1.0.0 from the quirky server's
population, and their expected outputs from an engine run (checked by eye before they
are committed)::

    python -m tests.unit.sources.record_examples

``quirky-member.ndjson``: one resource of each type the server gives, each with its
quirks, the member's references carrying the member number (as a logical reference)
since an example is mapped without a member context. ``refused.ndjson``: what the
mapping must refuse, each with why. Mapped as ``payerbridge mappings test`` maps
examples: source ``example``, namespace ``plan``, no context.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, Mapping, RecordNotMapped, load_mapping
from payerbridge.backends.model import RecordProblem
from payerbridge.backends.readers import read_file
from payerbridge_tools.sandbox.quirks import LOCAL_LABS, MEMBER_SYSTEM, quirky_population

DIRECTORY = BUILT_IN_MAPPINGS / "fhir-server-quirks" / "1.0.0"
EXAMPLES = DIRECTORY / "examples"


def _pick(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first resource of each kind the examples show, in this order."""
    wanted = [
        ("Patient", lambda r: len(r["birthDate"]) < 10),
        ("Coverage", lambda r: "/" in r.get("period", {}).get("start", "")),
        ("Condition", lambda r: len(r.get("onsetDateTime", "0000-00-00")) < 10),
        (
            "Observation",
            lambda r: r["code"]["coding"][0]["system"] == LOCAL_LABS and "category" not in r,
        ),
        (
            "Observation",
            lambda r: r["code"]["coding"][0]["system"] == LOCAL_LABS and "category" in r,
        ),
        (
            "Observation",
            lambda r: r["effectiveDateTime"].count(":") == 2
            and r["effectiveDateTime"][-6] not in "+-",
        ),
        (
            "Encounter",
            lambda r: not r["period"]["start"].endswith(("00", "Z"))
            or "-05:00" not in r["period"]["start"],
        ),
        ("MedicationRequest", lambda r: True),
        ("Procedure", lambda r: True),
        ("Immunization", lambda r: True),
        ("AllergyIntolerance", lambda r: True),
    ]
    picked = []
    for kind, test in wanted:
        found = next(r for r in resources if r["resourceType"] == kind and test(r))
        picked.append(copy.deepcopy(found))
    return picked


def _with_member_numbers(
    resources: list[dict[str, Any]], population: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    numbers = {
        r["id"]: r["identifier"][0]["value"] for r in population if r["resourceType"] == "Patient"
    }
    for resource in resources:
        for name in ("subject", "patient", "beneficiary"):
            reference = resource.get(name)
            if reference and reference["reference"].removeprefix("Patient/") in numbers:
                member = numbers[reference["reference"].removeprefix("Patient/")]
                reference["identifier"] = {"system": MEMBER_SYSTEM, "value": member}
    return resources


def _refused(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lab = copy.deepcopy(resources[3])
    lab["code"]["coding"][0]["code"] = "VITD"  # a local code the ConceptMap does not hold
    no_status = copy.deepcopy(resources[4])
    no_status.pop("status")  # required, not knowable: mapped, for the profile check to hold
    bad_date = copy.deepcopy(resources[2])
    bad_date["onsetDateTime"] = "spring 2021"
    plain = copy.deepcopy(resources[8])
    plain["subject"].pop("identifier")  # no member context, no member number
    patient = copy.deepcopy(resources[0])
    patient["identifier"] = []
    return [lab, no_status, bad_date, plain, patient]


def _write_ndjson(path: Path, resources: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in resources))


def mapped(mapping: Mapping, path: Path) -> dict[str, Any]:
    """What ``payerbridge mappings test`` compares with ``<case>.expected.json``."""
    resources: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for item in read_file(mapping.input, path, mapping.input_options):
        if isinstance(item, RecordProblem):
            problems.append(item.to_json())
            continue
        try:
            resources.extend(mapping.apply(item.data, source_id="example", namespace="plan"))
        except RecordNotMapped as exc:
            problems.append(
                RecordProblem(item.location, exc.text, exc.code, key=item.key).to_json()
            )
    return {"resources": resources, "problems": problems}


def main() -> None:
    population = list(quirky_population(40, 42, date(2025, 1, 1)))
    picked = _with_member_numbers(_pick(population), population)
    EXAMPLES.mkdir(exist_ok=True)
    _write_ndjson(EXAMPLES / "quirky-member.ndjson", picked)
    _write_ndjson(EXAMPLES / "refused.ndjson", _refused(picked))
    mapping = load_mapping(DIRECTORY)
    for case in ("quirky-member", "refused"):
        output = mapped(mapping, EXAMPLES / f"{case}.ndjson")
        (EXAMPLES / f"{case}.expected.json").write_bytes(
            orjson.dumps(output, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        )


if __name__ == "__main__":
    main()
