"""The mapping fhir-server-quirks@1.0.0 on what the quirky server serves: its examples
as recorded, and every resource of a population made conformant where it can be known
(codes, dates, ids, references), nothing invented where it cannot."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import orjson
import pytest

from payerbridge.backends.mapping import Mapping, MappingLibrary, MappingRef
from payerbridge_tools.sandbox.quirks import LOCAL_LABS, quirky_population
from tests.unit.sources.record_examples import EXAMPLES, mapped

REF = MappingRef("fhir-server-quirks", "1.0.0")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATE_TIME = re.compile(
    r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?$"
)
_DATE_TIMES = (
    "effectiveDateTime",
    "onsetDateTime",
    "abatementDateTime",
    "recordedDate",
    "authoredOn",
    "performedDateTime",
    "occurrenceDateTime",
)


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return MappingLibrary().get(REF)


@pytest.mark.parametrize("case", ["quirky-member", "refused"])
def test_the_examples_give_what_was_recorded(mapping: Mapping, case: str) -> None:
    expected = orjson.loads((EXAMPLES / f"{case}.expected.json").read_bytes())
    assert mapped(mapping, EXAMPLES / f"{case}.ndjson") == expected


def _map(mapping: Mapping, resource: dict[str, Any], source: str = "clinical") -> dict[str, Any]:
    (out,) = mapping.apply(resource, source_id=source, namespace="plan", member="member-1")
    return out


def test_every_served_resource_maps_to_us_core(mapping: Mapping) -> None:
    population = list(quirky_population(15, 7, date(2025, 1, 1)))
    without_status = 0
    for resource in population:
        out = _map(mapping, resource)
        kind = out["resourceType"]
        assert out["meta"]["profile"][0].startswith("http://hl7.org/fhir/us/core/")
        for name in _DATE_TIMES:
            if name in out:
                assert _DATE_TIME.match(out[name]), (kind, name)
        if "birthDate" in out:
            assert _DATE.match(out["birthDate"])
        for name in ("subject", "patient", "beneficiary"):
            if name in out:
                assert out[name] == {"reference": "Patient/member-1"}
        if kind == "Observation":
            systems = {c["system"] for c in out["code"]["coding"]}
            if LOCAL_LABS in systems:
                assert "http://loinc.org" in systems
                assert out["category"][0]["coding"][0]["code"] == "laboratory"
            without_status += "status" not in out
            assert ("status" in out) == ("status" in resource)  # never invented
    assert without_status  # the population has some, left for the profile check


def test_a_member_is_one_patient_whichever_source_gives_it(mapping: Mapping) -> None:
    patient = next(
        r for r in quirky_population(3, 1, date(2025, 1, 1)) if r["resourceType"] == "Patient"
    )
    ids = {_map(mapping, patient, source)["id"] for source in ("clinical", "claims", "x")}
    assert len(ids) == 1
