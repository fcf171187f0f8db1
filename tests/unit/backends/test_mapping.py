"""The mapping engine: JSONata expressions with ConceptMaps, dates, derived ids, each
resource stamped with its mapping version and source, and errors a person can act on."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.backends.examples import run_example
from payerbridge.backends.mapping import (
    BUILT_IN_MAPPINGS,
    MAPPING_TAG_SYSTEM,
    MappingLibrary,
    MappingRef,
    RecordNotMapped,
    load_mapping,
    parse_source_date,
)
from payerbridge.errors import MappingError

CONDITIONS = MappingRef("csv-conditions", "1.0.0")


def a_row(**changes: str) -> dict[str, str]:
    row = {
        "member_id": "M1",
        "row_id": "R1",
        "problem_code": "HTN",
        "onset_date": "20200102",
        "resolved_date": "",
        "recorded_date": "",
    }
    row.update(changes)
    return row


@pytest.fixture(scope="module")
def conditions():  # type: ignore[no-untyped-def]
    return MappingLibrary().get(CONDITIONS)


def test_a_record_becomes_resources_stamped_with_the_mapping_version_and_source(
    conditions,  # type: ignore[no-untyped-def]
) -> None:
    (condition,) = conditions.apply(a_row(), source_id="clinical", namespace="plan")
    assert condition["meta"]["source"] == "urn:payerbridge:source:clinical"
    assert {"system": MAPPING_TAG_SYSTEM, "code": "csv-conditions", "version": "1.0.0"} in (
        condition["meta"]["tag"]
    )
    assert condition["code"]["coding"] == [
        {
            "system": "http://hl7.org/fhir/sid/icd-10-cm",
            "code": "I10",
            "display": "Essential (primary) hypertension",
        }
    ]
    assert condition["onsetDateTime"] == "2020-01-02"
    assert "abatementDateTime" not in condition  # empty in the row: left out, not ""


def test_ids_are_stable_and_patients_are_shared_by_a_namespace(conditions) -> None:  # type: ignore[no-untyped-def]
    first = conditions.apply(a_row(), source_id="clinical", namespace="plan")
    again = conditions.apply(a_row(), source_id="clinical", namespace="plan")
    other_source = conditions.apply(a_row(), source_id="labs", namespace="plan")
    other_plan = conditions.apply(a_row(), source_id="clinical", namespace="acquired")
    assert first == again
    assert first[0]["id"] != other_source[0]["id"]  # the row id is the source's own
    assert first[0]["subject"] == other_source[0]["subject"]  # the member is the plan's
    assert first[0]["subject"] != other_plan[0]["subject"]


def test_an_unknown_local_code_names_the_code_and_the_map(conditions) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecordNotMapped) as raised:
        conditions.apply(a_row(problem_code="ZZZ"), source_id="s", namespace="plan")
    assert raised.value.code == "code-invalid"
    assert "'ZZZ'" in raised.value.text and "local-problems" in raised.value.text


def _refused() -> RecordNotMapped:
    try:
        parse_source_date("not a date", "DMG02")
    except RecordNotMapped as exc:
        return exc
    raise AssertionError("a date was read from 'not a date'")


REFUSED = _refused()


@given(st.text(min_size=1, max_size=20))
@settings(max_examples=60)
def test_a_date_is_read_or_refused_naming_the_field_never_the_value(text: str) -> None:
    try:
        parsed = parse_source_date(text, "DMG02")
    except RecordNotMapped as exc:
        # The same words whatever the value: it never reaches the text.
        assert exc.text == REFUSED.text
        return
    assert len(parsed) == 10 and parsed[4] == "-" and parsed[7] == "-"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20210305", "2021-03-05"),
        ("2021-03-05", "2021-03-05"),
        ("3/5/2021", "2021-03-05"),
        ("05-Mar-2021", "2021-03-05"),
        ("2021-03-05T10:00:00Z", "2021-03-05"),
    ],
)
def test_the_date_forms_backends_write(text: str, expected: str) -> None:
    assert parse_source_date(text, "d") == expected


@pytest.mark.parametrize("text", ["20211305", "2021-02-30", "13/01/2021", "5 March", "0"])
def test_what_is_not_a_date_is_refused(text: str) -> None:
    with pytest.raises(RecordNotMapped):
        parse_source_date(text, "d")


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "csv-conditions" / "1.0.0"
    shutil.copytree(BUILT_IN_MAPPINGS / "csv-conditions" / "1.0.0", target)
    return target


def test_a_broken_expression_names_the_file_and_line(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / "transform.jsonata").write_text('{\n  "resourceType": "Condition",\n  "id": (\n}')
    with pytest.raises(MappingError) as raised:
        load_mapping(directory)
    assert "transform.jsonata line" in raised.value.text


def test_a_broken_manifest_names_every_problem(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / "mapping.toml").write_text(
        'name = "other"\nversion = "1.0.0"\nsource_format = "fax"\ncolour = 1\n'
    )
    with pytest.raises(MappingError) as raised:
        load_mapping(directory)
    text = raised.value.text
    for part in ("mapping.toml", "directory", "source_format", "input", "produces", "colour"):
        assert part in text


def test_a_broken_concept_map_is_refused_when_loaded(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "conceptmaps" / "local-problems.json"
    document = json.loads(path.read_text())
    document["group"][0]["element"][0]["target"] = []
    path.write_text(json.dumps(document))
    with pytest.raises(MappingError, match=r"group\[0\]\.element\[0\]"):
        load_mapping(directory)


def test_a_type_the_mapping_does_not_declare_is_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / "transform.jsonata").write_text('{"resourceType": "Observation", "id": $id("x")}')
    with pytest.raises(RecordNotMapped, match="produces"):
        load_mapping(directory).apply(a_row(), source_id="s", namespace="plan")


def test_a_later_directory_adds_versions_and_an_unknown_version_names_the_known(
    tmp_path: Path,
) -> None:
    directory = _copy(tmp_path)
    newer = directory.parent / "1.1.0"
    directory.rename(newer)
    manifest = newer / "mapping.toml"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.1.0"'))
    library = MappingLibrary([BUILT_IN_MAPPINGS, tmp_path])
    assert library.get(MappingRef("csv-conditions", "1.1.0")).ref.version == "1.1.0"
    with pytest.raises(MappingError, match=r"1\.0\.0, csv-conditions@1\.1\.0"):
        library.get(MappingRef("csv-conditions", "9.0.0"))


def test_every_shipped_mapping_gives_its_examples() -> None:
    library = MappingLibrary()
    ran = 0
    for ref in library.refs():
        mapping = library.get(ref)
        for example in mapping.examples:
            run = run_example(mapping, example)
            assert run.passed, "\n".join([f"{ref} {example.name}", *run.diff()])
            ran += 1
    assert ran >= 1


# Example records that must fail their profile, and why: each is there to show that what
# cannot be made conformant is quarantined rather than sent or invented.
HELD_ON_PURPOSE = {
    ("fhir-server-quirks@1.0.0", "refused", "Observation"): "no status, and none is knowable",
    ("x12-278-prior-auth@1.0.0", "denied", "ExplanationOfBenefit"): "a 278 has no CARC reason",
    ("x12-837-eob@1.0.0", "dental", "ExplanationOfBenefit"): "an 837D has no network status",
    ("x12-837-eob@1.1.0", "dental", "ExplanationOfBenefit"): "an 837D has no network status",
}


def test_every_shipped_example_meets_its_profile_but_those_held_on_purpose() -> None:
    from payerbridge.fhir.profiles import ProfileChecker

    checker = ProfileChecker.bundled()
    library = MappingLibrary()
    failing = set()
    for ref in library.refs():
        mapping = library.get(ref)
        for example in mapping.examples:
            for resource in run_example(mapping, example).actual["resources"]:
                resource["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"  # as ingestion stamps
                if checker.check(resource):
                    failing.add((str(ref), example.name, resource["resourceType"]))
    assert failing == set(HELD_ON_PURPOSE)


def test_both_engines_give_every_shipped_example_record_the_same_answer() -> None:
    """ADR 0055: the fast engine maps what the reference engine maps, record by record."""
    from payerbridge.backends.model import SourceRecord
    from payerbridge.backends.readers import read_file

    library = MappingLibrary()
    compared = 0
    for ref in library.refs():
        mapping = library.get(ref)
        for example in mapping.examples:
            context = None  # what a file's records leave the next (ADR 0058), as ingested
            for item in read_file(mapping.input, example.input, mapping.input_options):
                if isinstance(item, SourceRecord):
                    agree = mapping.engines_agree(
                        item.data, source_id="e", namespace="plan", context=context
                    )
                    assert agree, f"{ref} {example.name} {item.location}"
                    compared += 1
                    with contextlib.suppress(RecordNotMapped):
                        mapping.apply(item.data, source_id="e", namespace="plan", context=context)
                        context = mapping.carried(item.data, context, namespace="plan")
    assert compared >= 30


_text = st.one_of(st.just(""), st.text(alphabet="AZaz09-/ .", max_size=12))


@settings(max_examples=150)
@given(
    code=st.sampled_from(["DM2", "HTN", "ASTH", "XYZ", ""]),
    dates=st.lists(
        st.one_of(_text, st.sampled_from(["20190314", "03/01/2018", "01-Apr-2018"])),
        min_size=3,
        max_size=3,
    ),
    member=_text,
)
def test_both_engines_agree_on_generated_rows(
    conditions,
    code: str,
    dates: list[str],
    member: str,  # type: ignore[no-untyped-def]
) -> None:
    row = a_row(
        member_id=member,
        problem_code=code,
        onset_date=dates[0],
        resolved_date=dates[1],
        recorded_date=dates[2],
    )
    assert conditions.engines_agree(row, source_id="example", namespace="plan")
