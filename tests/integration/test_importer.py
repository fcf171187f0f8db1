"""The streaming importer against a real database (SQLite, or PostgreSQL in the PG run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from payerbridge.bootstrap import Platform, build_platform, identity_secret
from payerbridge.config import load_settings
from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.indexing import reindex_all
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.importer import FileReport, import_file, refresh_statistics
from payerbridge.store.tables import identity_blocking_keys, identity_member_records
from tests.builders import a_coverage, a_patient


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]):  # type: ignore[no-untyped-def]
    env = database_env()
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=env.get("PAYERBRIDGE_DATABASE_URL")
    )
    platform = build_platform(settings)
    yield platform
    platform.close()


def imported(platform: Platform, path: Path, **options: Any) -> FileReport:
    """``import_file`` in a unit of work of its own, the statistics refreshed once it has
    committed (as ``Platform.import_members`` does)."""
    with platform.transactions.begin() as unit:
        report = import_file(unit, path, **options)
    if report.accepted:
        refresh_statistics(platform.engine)
    return report


def write_ndjson(path: Path, lines: list[object]) -> Path:
    path.write_bytes(
        b"".join(
            (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
        )
    )
    return path


def test_a_valid_file_is_imported_with_compartments_and_tokens(
    platform: Platform, tmp_path: Path
) -> None:
    provenance = {
        "resourceType": "Provenance",
        "id": "pv1",
        "target": [{"reference": "Coverage/c1"}],
    }
    path = write_ndjson(tmp_path / "a.ndjson", [a_patient(), a_coverage(), provenance])
    report = imported(platform, path)
    assert report.accepted and report.counts == {"Patient": 1, "Coverage": 1, "Provenance": 1}
    assert [r["id"] for r in platform.members.compartment("p1")] == ["p1", "c1", "pv1"]
    assert platform.members.find_refs_by_token("Coverage", "identifier", "M123") == ["Coverage/c1"]
    assert platform.members.find_refs_by_token("Coverage", "subscriber-id", "S1") == ["Coverage/c1"]
    assert platform.members.find_refs_by_token(
        "Patient", "identifier", "M123", "http://old.example/mb"
    ) == ["Patient/p1"]


def test_a_file_with_bad_lines_is_rejected_whole_with_line_numbers(
    platform: Platform, tmp_path: Path
) -> None:
    observation_without_subject = {"resourceType": "Observation", "id": "o1", "status": "final"}
    path = write_ndjson(
        tmp_path / "bad.ndjson",
        [
            a_patient(),
            b"{not json",
            {"resourceType": "Basic", "id": "b"},
            observation_without_subject,
            {"resourceType": "Patient", "id": "bad id!"},
            a_coverage(),
        ],
    )
    report = imported(platform, path)
    assert not report.accepted
    assert [(e.line, e.text.split(" (")[0]) for e in report.errors] == [
        (2, "not valid JSON"),
        (3, "unsupported resourceType 'Basic'"),
        (4, "Observation.subject must reference a Patient"),
        (5, "Patient.id is missing or not a valid FHIR id"),
    ]
    assert platform.members.count() == 0


def test_members_are_handed_to_indexing_once_each_in_the_order_the_file_names_them(
    platform: Platform, tmp_path: Path
) -> None:
    # Reading members back in the order their rows were written keeps each chunk's reads
    # on neighbouring rows; sorted ids ("p1", "p10", "p100") scatter them over the table.
    lines: list[object] = [
        a_patient("p10", member_id="M10"),
        a_coverage("c2", patient="p2", member_id="M2"),
        a_patient("p2", member_id="M2"),
        a_patient("p1", member_id="M1"),
        a_coverage("c10", patient="p10", member_id="M10"),
    ]
    handed: list[list[str]] = []
    report = imported(
        platform,
        write_ndjson(tmp_path / "order.ndjson", lines),
        index_members=lambda _unit, ids: handed.append(list(ids)),
    )
    assert report.accepted
    assert handed == [["p10", "p2", "p1"]]


def test_big_files_are_rejected_whole_even_after_batches_were_flushed(
    platform: Platform, tmp_path: Path
) -> None:
    lines: list[object] = [a_patient(f"p{i}", member_id=f"M{i}") for i in range(2500)]
    lines.append(b"[]")
    report = imported(platform, write_ndjson(tmp_path / "big.ndjson", lines))
    assert report.errors[0].line == 2501
    assert platform.members.count() == 0


def test_a_bundle_file_and_a_reimport_replace_resources(platform: Platform, tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": a_patient()}, {"resource": a_coverage()}],
    }
    path = tmp_path / "b.json"
    path.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    assert imported(platform, path).resources == 2
    changed = a_coverage(member_id="M999")
    imported(platform, write_ndjson(tmp_path / "again.ndjson", [changed]))
    coverage = platform.members.read("Coverage", "c1")
    assert coverage is not None and coverage["meta"]["versionId"] == "2"
    assert platform.members.find_refs_by_token("Coverage", "identifier", "M123") == []
    assert platform.members.find_refs_by_token("Coverage", "identifier", "M999") == ["Coverage/c1"]
    assert platform.members.count() == 2


def test_a_reimported_member_is_found_by_what_it_holds_now_and_not_by_what_it_held(
    platform: Platform, tmp_path: Path
) -> None:
    identity = platform.adapters.identity
    before = a_patient(family="Garcia", birth_date="1980-02-03", member_id=None)
    after = a_patient(family="Okafor", birth_date="1975-11-30", member_id=None)
    keys = {
        label: blocking_keys(record_from_fhir(patient, None), secret=identity.blocking_secret)
        for label, patient in (("before", before), ("after", after))
    }
    assert keys["before"].isdisjoint(keys["after"])

    assert platform.import_members(write_ndjson(tmp_path / "a.ndjson", [before])).accepted
    assert [m for m, _ in identity.candidates(keys["before"])] == ["p1"]
    assert platform.import_members(write_ndjson(tmp_path / "b.ndjson", [after])).accepted

    assert identity.candidates(keys["before"]) == []
    [(member, record)] = identity.candidates(keys["after"])
    assert (member, record.family_name) == ("p1", "okafor")


def test_an_import_on_postgresql_leaves_the_planner_statistics_of_what_it_wrote(
    platform: Platform, tmp_path: Path
) -> None:
    """Without them the planner takes the tables for empty until autovacuum gets there;
    and the import vacuums them, so the pages it wrote can be marked all-visible and reads
    by index need not visit them."""
    if platform.engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    path = write_ndjson(tmp_path / "a.ndjson", [a_patient(), a_coverage()])
    assert imported(platform, path).accepted
    with platform.engine.connect() as connection:
        counted = dict(
            connection.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class WHERE relname IN "
                "('fhir_resources', 'fhir_tokens')"
            ).all()
        )
        # Whether the pages became all-visible is not asserted: another test worker's open
        # transaction in the same database holds back VACUUM's horizon. That the import's
        # VACUUM ran is what it owes (autovacuum is off on CI's server, so nothing else does).
        vacuumed = dict(
            connection.exec_driver_sql(
                "SELECT relname, last_vacuum IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname IN "
                "('fhir_resources', 'fhir_tokens')"
            ).all()
        )
    assert counted["fhir_resources"] == 2  # -1 (never analyzed) without the import's ANALYZE
    assert counted["fhir_tokens"] > 0
    assert vacuumed == {"fhir_resources": True, "fhir_tokens": True}


def test_a_large_import_on_postgresql_gives_the_planner_statistics_as_its_tables_grow(
    platform: Platform, tmp_path: Path
) -> None:
    """Unanalyzed, the planner guesses that a batch's ``ref = ANY(:refs)`` matches the
    whole table, and each batch scanned every token written before it (quadratic). Read
    from a second connection while the import's one transaction is still open."""
    if platform.engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    patients = 25_000  # past the first ANALYZE, at 20,000 resources
    path = write_ndjson(
        tmp_path / "large.ndjson", [a_patient(f"p{i}", member_id=f"M{i}") for i in range(patients)]
    )
    size, consumed = path.stat().st_size, 0
    seen: list[float] = []

    # An engine of the test's own: the platform's refuses a second connection to the
    # thread whose unit holds one (errors.SecondConnection, refused by store.engines).
    observer = create_engine(platform.engine.url, poolclass=NullPool)

    def look(line_bytes: int) -> None:  # once, near the end of the file
        nonlocal consumed
        before, consumed = consumed, consumed + line_bytes
        if before < 0.9 * size <= consumed:
            with observer.connect() as connection:
                seen.append(
                    connection.exec_driver_sql(
                        "SELECT reltuples FROM pg_class WHERE relname = 'fhir_resources'"
                    ).scalar_one()
                )

    assert imported(platform, path, progress=look).accepted
    observer.dispose()
    # -1 (never analyzed) without the import's own ANALYZE
    assert len(seen) == 1 and seen[0] >= 20_000


def test_compartments_stream_one_member_after_another_a_few_rows_at_a_time(
    platform: Platform, tmp_path: Path
) -> None:
    members = ["p1", "p2", "p3"]
    lines: list[object] = []
    for member in members:
        lines.append(a_patient(member, member_id=f"{member}-card"))
        lines.extend(
            {
                "resourceType": "Observation",
                "id": f"{member}-o{n}",
                "status": "final",
                "code": {"text": "weight"},
                "subject": {"reference": f"Patient/{member}"},
            }
            for n in range(3)
        )
    assert imported(platform, write_ndjson(tmp_path / "a.ndjson", lines)).accepted
    # Each member alone in pages of 3; two members in one read; all in one read.
    for chunk in (3, 8, 2000):
        read = list(platform.members.stream_compartments(["p3", "p1", "nobody"], chunk=chunk))
        owners = [patient for patient, _ in read]
        assert sorted(owners) == ["p1"] * 4 + ["p3"] * 4  # p2 not asked for; nobody has none
        assert owners in (["p1"] * 4 + ["p3"] * 4, ["p3"] * 4 + ["p1"] * 4)  # together
        assert {(p, f"{r['resourceType']}/{r['id']}") for p, r in read} == {
            (p, ref)
            for p in ("p1", "p3")
            for ref in (f"Patient/{p}", *(f"Observation/{p}-o{n}" for n in range(3)))
        }
        assert all(r["meta"]["versionId"] == "1" for _, r in read)


def _household(n: int) -> list[dict[str, Any]]:
    """A subscriber and a dependent carrying the subscriber's SSN, far apart in id order,
    the dependent with an ended coverage beside the current one."""
    ssn = {"system": "http://hl7.org/fhir/sid/us-ssn", "value": f"123-45-{n:04d}"}
    subscriber = a_patient(f"a-{n:03d}", family=f"Family{n}", member_id=None)
    dependent = a_patient(f"z-{n:03d}", given="Luis", family=f"Family{n}", member_id=None)
    subscriber["identifier"] = [ssn]
    dependent["identifier"] = [ssn]
    own = a_coverage(f"ca-{n}", patient=f"a-{n:03d}", member_id=f"M{n}", subscriber_id=f"S{n}")
    current = a_coverage(f"cz-{n}", patient=f"z-{n:03d}", member_id=f"D{n}", subscriber_id=f"S{n}")
    ended = {
        **a_coverage(f"cy-{n}", patient=f"z-{n:03d}", member_id=f"OLD{n}"),
        "status": "cancelled",
    }
    for coverage, relationship in ((own, "self"), (current, "child"), (ended, "child")):
        coverage["subscriber"] = {"reference": f"Patient/a-{n:03d}"}
        coverage["relationship"] = {"coding": [{"code": relationship}]}
    return [subscriber, dependent, own, current, ended]


def _index_of(platform: Platform) -> tuple[list[Any], list[Any]]:
    """Each member's record (opened: sealed anew each time it is written) and keys."""
    with platform.engine.connect() as connection:
        sealed = connection.execute(
            select(
                identity_member_records.c.member_id,
                identity_member_records.c.record,
                identity_member_records.c.blocking_keys,
            ).order_by(identity_member_records.c.member_id)
        ).all()
        keys = connection.execute(
            select(identity_blocking_keys).order_by(
                identity_blocking_keys.c.key, identity_blocking_keys.c.member_id
            )
        ).all()
    column = "identity_member_records.record"
    records = [
        (member, platform.sealed_data.open(column, record, member).decode(), listed)
        for member, record, listed in sealed
    ]
    return records, keys


def test_indexing_on_worker_processes_builds_the_index_an_import_builds(
    platform: Platform, tmp_path: Path
) -> None:
    """Many members are indexed on spawned processes, chunk by chunk, while the import's
    transaction reads and writes: the index is the same, a subscriber in another chunk
    included."""
    lines = [resource for n in range(120) for resource in _household(n)]
    assert platform.import_members(write_ndjson(tmp_path / "a.ndjson", lines)).accepted
    in_process = _index_of(platform)  # 240 members: one chunk, indexed in this process
    records = {member: orjson.loads(record) for member, record, _ in in_process[0]}
    assert len(records) == 240
    assert records["z-007"]["ssn_carried"] and not records["a-007"]["ssn_carried"]
    assert records["z-007"]["member_id"] == "D7"  # the current coverage's, not the ended one's

    pooled = SqlIdentityStore(
        platform.engine,
        identity_secret(platform.settings),
        keyring=platform.sealed_data.keyring,
        index_workers=2,
        index_batch=25,
    )
    chunks: list[int] = []
    with platform.transactions.begin() as unit:
        assert reindex_all(pooled, unit, at=unit.now, progress=chunks.append) == 240
    assert chunks == [25] * 9 + [15]
    assert _index_of(platform) == in_process
