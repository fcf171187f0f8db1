"""fixed-width-labs@1.0.0: a laboratory extract's lines to US Core 6.1 lab results, each
checked against its profile as the boundary checks it; a line the mapping cannot read
refused with its line and why."""

from __future__ import annotations

import io
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, RecordNotMapped, load_mapping
from payerbridge.backends.model import SourceRecord
from payerbridge.backends.readers import read_stream
from payerbridge.fhir.profiles import ProfileChecker

MAPPING = load_mapping(BUILT_IN_MAPPINGS / "fixed-width-labs" / "1.0.0")
CODES = {"A1C": "4548-4", "CHOL": "2093-3", "GLU": "2345-7", "CREAT": "2160-0", "TSH": "3016-3"}
STATUSES = {"F": "final", "P": "preliminary", "C": "corrected", "X": "cancelled"}


def line(
    member: str, result: str, code: str, collected: str, value: str, unit: str, status: str
) -> str:
    return f"{member:<12}{result:<20}{code:<8}{collected:<8}{value:>10}{unit:<10}{status}\n"


def mapped(text: str) -> list[dict]:  # type: ignore[type-arg]
    resources = []
    for item in read_stream(
        "fixed-width", io.BytesIO(text.encode()), "labs.txt", MAPPING.input_options
    ):
        assert isinstance(item, SourceRecord), item
        resources += MAPPING.apply(item.data, source_id="labs", namespace="plan")
    return resources


@settings(max_examples=40, deadline=None)
@given(
    code=st.sampled_from(sorted(CODES)),
    status=st.sampled_from(sorted(STATUSES)),
    collected=st.dates(date(1990, 1, 1), date(2030, 12, 31)),
    value=st.none() | st.decimals(0, 9999, places=1, allow_nan=False),
)
def test_every_known_code_and_status_gives_a_us_core_lab_result(
    code: str, status: str, collected: date, value: object
) -> None:
    text = line(
        "M1", "R1", code, collected.strftime("%Y%m%d"), "" if value is None else str(value),
        "mg/dL", status,
    )  # fmt: skip
    (observation,) = mapped(text)
    assert ProfileChecker.bundled().check(observation) == []
    assert observation["code"]["coding"][0] == {
        **observation["code"]["coding"][0],
        "code": CODES[code],
    }
    assert observation["status"] == STATUSES[status]
    assert observation["effectiveDateTime"] == collected.isoformat()
    assert ("valueQuantity" in observation) == (value is not None)
    assert ("dataAbsentReason" in observation) == (value is None)
    assert observation["meta"]["tag"] == [MAPPING.tag]


def test_an_unknown_lab_code_or_status_names_the_map() -> None:
    for code, status, conceptmap in (
        ("LDL", "F", "local-lab-codes"),
        ("A1C", "Z", "result-status"),
    ):
        (record,) = read_stream(
            "fixed-width",
            io.BytesIO(line("M1", "R1", code, "20240101", "1", "%", status).encode()),
            "labs.txt",
            MAPPING.input_options,
        )
        assert isinstance(record, SourceRecord)
        try:
            MAPPING.apply(record.data, source_id="labs", namespace="plan")
        except RecordNotMapped as exc:
            assert conceptmap in exc.text and exc.code == "code-invalid"
        else:
            raise AssertionError(f"{code}/{status} was mapped")
