"""An X12 file through the intake (``ingestion.map_batches``), as ``payerbridge sources
ingest`` maps it (ADR 0056): records read, mapped and refused; a refused record held with
the record as read; warnings counted by kind and carried, as valid FHIR, on the
Provenance of the member whose record they are of; versions and transactions the source
does not read named in one line."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from payerbridge.backends.ingestion import Batch, Intake, MappingRun, map_batches
from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, load_mapping
from payerbridge.backends.model import RecordProblem
from payerbridge.backends.x12 import read_x12
from payerbridge.fhir import codes
from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.fhir.provenance import provenance_by
from payerbridge.fhir.resources import compartment_patient
from payerbridge.routing.model import Organization
from tests.unit.backends.x12_files import claims_837

CLAIMS = load_mapping(BUILT_IN_MAPPINGS / "x12-837-eob/1.0.0")
DENTAL = BUILT_IN_MAPPINGS / "x12-837-eob/1.0.0/examples/dental.837"
PLAN = Organization("Sandbox Plan", "1234567893")


def _batches(data: bytes) -> list[Batch]:
    intake = Intake(
        check=lambda resource: [],
        hold=lambda *args: None,
        provenance=provenance_by(PLAN),
        index_members=lambda *args: None,
    )
    run = MappingRun(
        CLAIMS,
        "claims",
        "plan",
        file_digest="0" * 64,
        recorded=datetime(2026, 1, 2, tzinfo=UTC),
        compartment_of=compartment_patient,
    )
    records = read_x12(io.BytesIO(data), "f.837", CLAIMS.input_options)
    return list(map_batches(records, run, intake))


def _file(claims: int = 3) -> bytes:
    data = "".join(claims_837(claims)).encode()
    # Claim 2's place of service is not a code the guide lists: a warning. Claim 3's
    # service date is no date: its meaning is gone, and it is refused.
    data = data.replace(b"CLM*C0000002*100***11:B:1", b"CLM*C0000002*100***1X:B:1")
    third = data.index(b"CLM*C0000003")
    return data[:third] + data[third:].replace(b"D8*20240110", b"D8*20241310", 1)


def _provenances(batch: Batch) -> dict[str, dict[str, Any]]:
    return {
        member: resource
        for resource, member in batch.resources
        if resource["resourceType"] == "Provenance" and member is not None
    }


def test_a_file_s_records_are_read_mapped_refused_and_warned_of() -> None:
    (batch,) = _batches(_file())
    assert batch.records == 2 and batch.mapped == 2
    assert batch.quarantined == {"1497758544|C0000003"}
    (refused,) = batch.problems
    assert refused.location.segment_id == "DTP" and refused.key == "1497758544|C0000003"
    (held,) = batch.held
    assert held.resource["resourceType"] == "X12Record" and held.record_key == refused.key
    assert held.resource["record"]["kind"] == "837P"
    assert held.issues[0].rule == "x12-record" and held.issues[0].path == str(refused.location)
    (warning,) = batch.warnings
    assert (warning.kind, warning.key) == ("code", "1497758544|C0000002")


def test_warnings_ride_on_the_member_s_provenance_as_valid_fhir() -> None:
    (batch,) = _batches(_file())
    provenances = _provenances(batch)
    assert len(provenances) == 2
    warned = [
        p
        for p in provenances.values()
        if any(e["url"] == codes.SOURCE_WARNING_EXTENSION for e in p["entity"][0]["extension"])
    ]
    (provenance,) = warned  # only the member whose claim had the warning
    texts = [
        e["valueString"]
        for e in provenance["entity"][0]["extension"]
        if e["url"] == codes.SOURCE_WARNING_EXTENSION
    ]
    assert texts == [str(batch.warnings[0])]
    assert "1X" not in texts[0]  # the text names the element, never its value
    checker = ProfileChecker.bundled()
    for resource in provenances.values():
        assert checker.check(resource) == [], [i.to_json() for i in checker.check(resource)]


def test_an_envelope_count_warning_rides_on_every_provenance_of_its_set() -> None:
    data = "".join(claims_837(2)).encode().replace(b"SE*", b"SE*9", 1)
    (batch,) = _batches(data)
    assert batch.mapped == 2 and not batch.problems
    assert [w.kind for w in batch.warnings] == ["count"]
    for provenance in _provenances(batch).values():
        urls = [e["url"] for e in provenance["entity"][0]["extension"]]
        assert codes.SOURCE_WARNING_EXTENSION in urls


def _as_4010(data: bytes, guide: bytes) -> bytes:
    """An interchange and group in 4010 (ISA12 00401, ISA11 U, GS08 ``guide``)."""
    data = data.replace(b"*^*00501*", b"*U*00401*", 1)
    return data.replace(b"005010X224A2", guide).replace(b"005010X222A1", guide)


def test_a_4010_file_is_named_as_a_version_not_read() -> None:
    for base, guide, what in [
        (DENTAL.read_bytes(), b"004010X097A1", "837D dental claim"),
        ("".join(claims_837(1)).encode(), b"004010X098A1", "837P professional claim"),
    ]:
        items = list(read_x12(io.BytesIO(_as_4010(base, guide)), "old.837", {}))
        (problem,) = items
        assert isinstance(problem, RecordProblem) and problem.code == "not-supported"
        assert problem.location.segment_id == "GS"
        assert problem.text == (
            f"version {guide.decode()} is not read; 5010 only (this functional group is an {what})"
        )


def test_a_transaction_the_source_does_not_read_is_named_in_one_line() -> None:
    data = DENTAL.read_bytes()
    items = list(read_x12(io.BytesIO(data), "f.837", {"kinds": ["837P", "837I"]}))
    (problem,) = items
    assert isinstance(problem, RecordProblem) and problem.code == "not-supported"
    assert problem.text.startswith(
        "this functional group is an 837D dental claim (005010X224A2); this source reads 837I, 837P"
    )


def test_an_interchange_version_pyx12_does_not_read_is_named_at_the_isa() -> None:
    data = "".join(claims_837(1)).encode().replace(b"*00501*", b"*00601*", 1)
    (problem,) = read_x12(io.BytesIO(data), "new.837", {})
    assert isinstance(problem, RecordProblem) and problem.code == "not-supported"
    assert problem.text == "version 00601 (ISA12) is not read; 5010 only"
    assert problem.location.segment == 1
