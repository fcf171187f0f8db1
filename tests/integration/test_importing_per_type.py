"""A plan's per-type export (Patient.ndjson, then Coverage.ndjson) loaded into the member
store and the identity index, in one import call or in two (SQLite, or PostgreSQL in the
PG run). The index must end as a single file of the same members leaves it: each member
found by what its Coverage holds, and no key left from what it held before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.indexing import index_members
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.store.importer import import_files
from payerbridge.store.tables import identity_blocking_keys, identity_member_records
from tests.builders import a_coverage, a_patient

_MEMBERS = 30


@pytest.fixture
def make_platform(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> Any:  # a factory: a fresh instance (and database) per call
    made: list[Platform] = []

    def make() -> Platform:
        env = database_env()
        settings = load_settings(
            data_dir=tmp_path / f"data{len(made)}",
            database_url=env.get("PAYERBRIDGE_DATABASE_URL"),
        )
        made.append(build_platform(settings))
        return made[-1]

    yield make
    for platform in made:
        platform.close()


def _patients() -> list[dict[str, Any]]:
    # No member id on the Patient: only its Coverage names the member's card.
    return [
        a_patient(f"p{n}", family=f"Family{n % 7}", given=f"Given{n}", member_id=None)
        for n in range(_MEMBERS)
    ]


def _coverages(prefix: str = "M") -> list[dict[str, Any]]:
    return [
        a_coverage(f"c{n}", patient=f"p{n}", member_id=f"{prefix}{n}", subscriber_id=f"S{n}")
        for n in range(_MEMBERS)
    ]


def _write(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    return path


def _index(platform: Platform) -> tuple[dict[str, tuple[str, list[str]]], list[tuple[str, str]]]:
    """Each member's record and listed keys, and the key table's rows."""
    with platform.engine.connect() as connection:
        records = {
            row.member_id: (
                platform.sealed_data.open(
                    "identity_member_records.record", row.record, row.member_id
                ).decode(),
                sorted(orjson.loads(row.blocking_keys)),
            )
            for row in connection.execute(select(identity_member_records))
        }
        keys = sorted(
            (row.key, row.member_id) for row in connection.execute(select(identity_blocking_keys))
        )
    return records, keys


def _assert_indexed_as_one_file(platform: Platform, single: Platform) -> None:
    """The same records as a single file's import wrote (each instance keys with its own
    secret, so the keys are checked against this instance's own keying)."""
    records, _ = _index(platform)
    assert {m: r for m, (r, _) in records.items()} == {
        m: r for m, (r, _) in _index(single)[0].items()
    }
    identity = platform.adapters.identity
    for n, (patient, coverage) in enumerate(zip(_patients(), _coverages(), strict=True)):
        expected = blocking_keys(
            record_from_fhir(patient, coverage), secret=identity.blocking_secret
        )
        assert records[f"p{n}"][1] == sorted(expected)
    _assert_no_stale_keys(platform)


def _assert_no_stale_keys(platform: Platform) -> None:
    """The key table holds exactly the keys the records list."""
    records, keys = _index(platform)
    listed = sorted((key, member) for member, (_, ks) in records.items() for key in ks)
    assert keys == listed


def _found_by_card(platform: Platform, n: int, member_id: str) -> list[str]:
    """The members that a request naming member ``n`` and card ``member_id`` reaches."""
    identity = platform.adapters.identity
    patient = _patients()[n]
    card = a_coverage(f"c{n}", patient=f"p{n}", member_id=member_id, subscriber_id=f"S{n}")
    no_card = a_coverage(f"c{n}", patient=f"p{n}", member_id=None, subscriber_id=f"S{n}")
    by_card = blocking_keys(
        record_from_fhir(patient, card), secret=identity.blocking_secret
    ) - blocking_keys(record_from_fhir(patient, no_card), secret=identity.blocking_secret)
    assert by_card  # the keys the card's member id gives
    return [member for member, _ in identity.candidates(by_card)]


def test_a_per_type_export_in_one_call_is_indexed_once_after_its_last_file(
    make_platform: Callable[[], Platform], tmp_path: Path
) -> None:
    single = make_platform()
    both = [r for n in range(_MEMBERS) for r in (_patients()[n], _coverages()[n])]
    [report] = single.import_member_files([_write(tmp_path / "all.ndjson", both)])
    assert report.accepted

    per_type = make_platform()
    files = [
        _write(tmp_path / "Patient.ndjson", _patients()),
        _write(tmp_path / "Coverage.ndjson", _coverages()),
    ]
    handed: list[list[str]] = []
    with per_type.transactions.begin() as unit:
        reports = import_files(
            unit,
            files,
            index_members=lambda unit, ids: (
                handed.append(list(ids)),
                index_members(per_type.adapters.identity, unit, ids, at=unit.now),
            ),
        )
    assert [r.counts for r in reports] == [{"Patient": _MEMBERS}, {"Coverage": _MEMBERS}]
    assert handed == [[f"p{n}" for n in range(_MEMBERS)]]  # once, in the order written
    _assert_indexed_as_one_file(per_type, single)
    assert _found_by_card(per_type, 7, "M7") == ["p7"]
    _assert_no_stale_keys(per_type)


def test_a_second_call_reindexes_the_members_it_changes_and_leaves_no_stale_key(
    make_platform: Callable[[], Platform], tmp_path: Path
) -> None:
    single = make_platform()
    both = [r for n in range(_MEMBERS) for r in (_patients()[n], _coverages()[n])]
    assert single.import_members(_write(tmp_path / "all.ndjson", both)).accepted

    platform = make_platform()
    patients = _write(tmp_path / "Patient.ndjson", _patients())
    assert platform.import_members(patients).accepted  # indexed from the Patients alone
    assert _found_by_card(platform, 7, "M7") == []
    assert platform.import_members(_write(tmp_path / "Coverage.ndjson", _coverages())).accepted
    _assert_indexed_as_one_file(platform, single)
    assert _found_by_card(platform, 7, "M7") == ["p7"]
    _assert_no_stale_keys(platform)

    # New cards for every member: found by the new, not by the old.
    renewed = _write(tmp_path / "Coverage2.ndjson", _coverages("N"))
    assert platform.import_members(renewed).accepted
    assert _found_by_card(platform, 7, "N7") == ["p7"]
    assert _found_by_card(platform, 7, "M7") == []
    _assert_no_stale_keys(platform)


def test_a_member_whose_entry_is_unchanged_is_not_written_again(
    make_platform: Callable[[], Platform], tmp_path: Path
) -> None:
    platform = make_platform()
    both = [r for n in range(_MEMBERS) for r in (_patients()[n], _coverages()[n])]
    path = _write(tmp_path / "all.ndjson", both)
    assert platform.import_members(path).accepted
    with platform.engine.connect() as connection:
        first = dict(
            connection.execute(
                select(identity_member_records.c.member_id, identity_member_records.c.indexed_at)
            ).all()
        )
    changed = a_patient("p3", family="Family3", given="Renamed", member_id=None)
    assert platform.import_member_files([path, _write(tmp_path / "p3.ndjson", [changed])])
    with platform.engine.connect() as connection:
        again = dict(
            connection.execute(
                select(identity_member_records.c.member_id, identity_member_records.c.indexed_at)
            ).all()
        )
    assert {m for m in first if again[m] != first[m]} == {"p3"}
    records, _ = _index(platform)
    assert orjson.loads(records["p3"][0])["first_name"] == "renamed"
    _assert_no_stale_keys(platform)


def test_a_rejected_file_among_several_leaves_the_others_loaded_and_indexed(
    make_platform: Callable[[], Platform], tmp_path: Path
) -> None:
    platform = make_platform()
    files = [
        _write(tmp_path / "Patient.ndjson", _patients()),
        tmp_path / "Broken.ndjson",
        _write(tmp_path / "Coverage.ndjson", _coverages()),
    ]
    files[1].write_bytes(orjson.dumps(a_patient("p99", member_id=None)) + b"\n{broken\n")
    reports = platform.import_member_files(files)
    assert [r.accepted for r in reports] == [True, False, True]
    assert [e.line for e in reports[1].errors] == [2]
    assert platform.members.read("Patient", "p99") is None
    assert platform.members.count() == 2 * _MEMBERS
    records, _ = _index(platform)
    assert sorted(records) == sorted(f"p{n}" for n in range(_MEMBERS))
    assert _found_by_card(platform, 7, "M7") == ["p7"]
    _assert_no_stale_keys(platform)
