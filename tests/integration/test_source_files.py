"""A replicated source's files against a real database: mapped and kept in one
transaction each, Provenance with the PDex source format, the identity index fed, the
same file twice a no-op, and a new mapping version re-mapping every kept file with a
report of what changed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from unittest import mock

import orjson
import pytest
from sqlalchemy import delete, func, insert, select, update

from payerbridge.backends.model import FileBytes
from payerbridge.backends.replicated import IngestFile, RemapSource, ingest_file, remap_source
from payerbridge.bootstrap import Platform, build_platform
from payerbridge.compliance.lifecycle import EraseMember, Purge, Retention, erase_member, purge
from payerbridge.config import load_settings
from payerbridge.errors import DataKeyUnavailable
from payerbridge.security.data_rotation import RotateDataKeys, rotate_data_keys
from payerbridge.store.at_rest import at_rest
from payerbridge.store.members import opened_resource
from payerbridge.store.sealed_fields import SOURCE_FILE
from payerbridge.store.tables import fhir_resources, identity_member_records, source_files
from payerbridge.store.tables import source_file_chunks as chunks

MEMBERS_MAPPING = """
{
  "resourceType": "Patient",
  "id": $id("Patient", member_id),
  "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0"]},
  "identifier": [{"system": "https://plan.example/member-id", "value": member_id}],
  "name": [{"family": last, "given": [first]}],
  "gender": $translate(sex, "sexes").code,
  "birthDate": $date(dob, "dob")
}
"""
MEMBERS_MANIFEST = """
name = "csv-members"
version = "{version}"
source_format = "customtx"
input = "csv"
produces = ["Patient"]

[input_options]
columns = ["member_id", "first", "last", "sex", "dob"]
key = ["member_id"]
"""
SEXES = {
    "resourceType": "ConceptMap",
    "url": "https://plan.example/ConceptMap/sexes",
    "group": [
        {
            "target": "http://hl7.org/fhir/administrative-gender",
            "element": [
                {"code": "F", "target": [{"code": "female"}]},
                {"code": "M", "target": [{"code": "male"}]},
            ],
        }
    ],
}


def write_mapping(root: Path, version: str, expression: str = MEMBERS_MAPPING) -> None:
    directory = root / "csv-members" / version
    (directory / "conceptmaps").mkdir(parents=True)
    (directory / "mapping.toml").write_text(MEMBERS_MANIFEST.replace("{version}", version))
    (directory / "transform.jsonata").write_text(expression)
    (directory / "conceptmaps" / "sexes.json").write_text(orjson.dumps(SEXES).decode())


def sources_file(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        'mapping_dirs = ["mappings"]\n'
        f'[[source]]\nid = "enrollment"\nmode = "replicated"\nmapping = "csv-members@{version}"\n'
        '[[source]]\nid = "clinical"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
        f'[[source]]\nid = "roster"\nmode = "replicated"\nmapping = "csv-members@{version}"\n'
    )
    return path


@pytest.fixture
def open_platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]):  # type: ignore[no-untyped-def]
    env = database_env()
    opened: list[Platform] = []
    write_mapping(tmp_path / "mappings", "1.0.0")

    def start(version: str = "1.0.0") -> Platform:
        for platform in opened:
            platform.close()
        settings = load_settings(
            data_dir=tmp_path / "data",
            database_url=env.get("PAYERBRIDGE_DATABASE_URL"),
            sources_file=sources_file(tmp_path, version),
        )
        opened.append(build_platform(settings))
        return opened[-1]

    yield start
    for platform in opened:
        platform.close()


MEMBERS = b"member_id,first,last,sex,dob\nA1,Ann,Lee,F,19800102\nB2,Bo,Kim,M,1979-12-31\n"
NAMELESS = b"C3,,,F,19900101\n"
CONDITIONS = (
    b"member_id,row_id,problem_code,onset_date,resolved_date,recorded_date\n"
    b"A1,R1,HTN,20200101,,\nA1,R2,NOPE,20200101,,\nB2,R3,DM2,2021-02-03,,\n"
)


def stored(platform: Platform, resource_type: str) -> list[dict]:  # type: ignore[type-arg]
    with platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.body).where(
                fhir_resources.c.resource_type == resource_type
            )
        ).all()
        return [opened_resource(platform.engine, *row) for row in rows]


def test_files_are_mapped_kept_and_indexed_and_the_same_file_twice_changes_nothing(
    open_platform,  # type: ignore[no-untyped-def]
) -> None:
    platform = open_platform()
    members = ingest_file(
        IngestFile("enrollment", "members.csv", FileBytes(MEMBERS + NAMELESS)),
        platform.units.sources(),
    )
    assert members.counts == {"Patient": 2, "Provenance": 2}
    # A member without a name fails US Core's Patient: held with the reason, not kept.
    assert members.held == 1
    (held,) = platform.quarantine.list(limit=10)
    assert held.source_id == "enrollment" and held.mapping_version == "1.0.0"
    assert any(issue.path.endswith("name") for issue in held.issues)
    conditions = ingest_file(
        IngestFile("clinical", "conditions.csv", FileBytes(CONDITIONS)), platform.units.sources()
    )
    assert conditions.counts == {"Condition": 2, "Provenance": 2}
    (problem,) = conditions.problems
    assert problem.location.line == 3 and "'NOPE'" in problem.text

    patients = {p["identifier"][0]["value"]: p for p in stored(platform, "Patient")}
    condition_subjects = {c["subject"]["reference"] for c in stored(platform, "Condition")}
    assert condition_subjects == {f"Patient/{p['id']}" for p in patients.values()}
    with platform.engine.connect() as connection:
        indexed = connection.execute(
            select(func.count()).select_from(identity_member_records)
        ).scalar_one()
    assert indexed == 2  # the roster fed the identity index
    # The files are kept sealed (ADR 0044), in pieces (issue 71): nothing in the clear.
    with platform.engine.connect() as connection:
        wholes = connection.execute(select(source_files.c.body)).scalars()
        assert [bytes(body) for body in wholes] == [b"", b""]
        kept = [bytes(body) for body in connection.execute(select(chunks.c.body)).scalars()]
    assert len(kept) == 2 and all(body.startswith(b"pb1:") for body in kept)
    assert not any(name in body for body in kept for name in (b"Ann", b"Lee", b"19800102"))
    formats = {
        p["entity"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
        for p in stored(platform, "Provenance")
    }
    assert formats == {"customtx"}
    assert all(
        p["meta"]["tag"][0]["code"] in ("csv-members", "csv-conditions")
        for p in stored(platform, "Provenance")
    )

    again = ingest_file(
        IngestFile("enrollment", "members-again.csv", FileBytes(MEMBERS + NAMELESS)),
        platform.units.sources(),
    )
    assert again.duplicate and not again.counts
    assert len(stored(platform, "Patient")) == 2


def test_a_new_mapping_version_remaps_every_file_and_says_what_changed(
    open_platform,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    platform = open_platform()
    ingest_file(
        IngestFile("enrollment", "members.csv", FileBytes(MEMBERS)), platform.units.sources()
    )
    # 1.1.0 drops members born before 1980 and gives the others' names in upper case.
    write_mapping(
        tmp_path / "mappings",
        "1.1.0",
        MEMBERS_MAPPING.replace("[first]", "[$uppercase(first)]").replace(
            '"resourceType": "Patient"',
            '"resourceType": $substring(dob, 0, 4) < "1980" ? undefined : "Patient"',
        ),
    )
    platform = open_platform("1.1.0")
    (report,) = remap_source(RemapSource("enrollment"), platform.units.sources())
    assert report.mapping == "csv-members@1.1.0"
    assert report.changes["changed"] == 1  # Ann's name
    assert report.changes["removed"] >= 1  # Bo, no longer given
    (patient,) = stored(platform, "Patient")
    assert patient["name"][0]["given"] == ["ANN"]
    assert patient["meta"]["tag"][0]["version"] == "1.1.0"
    # Rolling back is a configuration change too.
    platform = open_platform("1.0.0")
    (back,) = remap_source(RemapSource("enrollment"), platform.units.sources())
    assert back.changes["added"] >= 1 and len(stored(platform, "Patient")) == 2


def test_a_resource_another_source_gave_differently_is_held_as_a_conflict_not_overwritten(
    open_platform,  # type: ignore[no-untyped-def]
) -> None:
    platform = open_platform()
    ingest_file(
        IngestFile("enrollment", "members.csv", FileBytes(MEMBERS)), platform.units.sources()
    )
    other = MEMBERS.replace(b"19800102", b"19800201")  # Ann's birth date, otherwise
    report = ingest_file(
        IngestFile("roster", "roster.csv", FileBytes(other)), platform.units.sources()
    )
    assert report.conflicts == 1  # Bo is the same in both: nothing to keep twice
    births = {p["identifier"][0]["value"]: p["birthDate"] for p in stored(platform, "Patient")}
    assert births["A1"] == "1980-01-02"  # the first source's, kept
    (held,) = platform.quarantine.list(limit=10)
    (issue,) = held.issues
    assert issue.rule == "conflict" and "source:enrollment" in issue.text
    assert "birthDate" in issue.text and "1980" not in issue.text


def test_what_a_live_source_no_longer_gives_leaves_what_we_keep_unless_its_answer_had_a_gap(
    open_platform,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from payerbridge.backends.live import AskedSource, LiveAnswers
    from payerbridge.backends.ports import RecordsQuery, SourceAnswer, SourceGap
    from payerbridge.backends.sources import LiveSourceSpec
    from payerbridge.types import MemberId

    platform = open_platform()
    spec = LiveSourceSpec(
        id="clinical",
        mode="live",
        mapping="fhir-server-quirks@1.0.0",
        base_url="https://fhir.plan.example",
        types=["Condition", "Encounter"],
    )
    member = MemberId("member-1")

    def condition(cid: str) -> dict:  # type: ignore[type-arg]
        return {
            "resourceType": "Condition",
            "id": cid,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
            "subject": {"reference": "Patient/their-1"},
        }

    def answer(*ids: str, gap: bool = False) -> LiveAnswers:
        gaps = [SourceGap("clinical", ("Condition",), "source-timeout", "slow")] if gap else []
        query = RecordsQuery("their-1", frozenset({"Condition"}))
        given = SourceAnswer([condition(i) for i in ids], gaps)
        return LiveAnswers(member, [AskedSource(spec, query, given)])

    def kept() -> int:
        return sum(1 for c in stored(platform, "Condition"))

    platform.live.sources.specs["clinical"] = spec
    for given, expected in ((answer("a", "b"), 2), (answer("a", gap=True), 2), (answer("a"), 1)):
        with platform.transactions.begin() as unit:
            platform.live.keep(unit, given)
        assert kept() == expected


def test_a_file_whose_body_the_purge_dropped_is_not_mapped_again_and_keeps_what_it_gave(
    open_platform,  # type: ignore[no-untyped-def]
) -> None:
    platform = open_platform()
    ingest_file(
        IngestFile("enrollment", "members.csv", FileBytes(MEMBERS)), platform.units.sources()
    )
    # Mapped a week ago or more: its body is past the raw-payload grace (ADR 0038).
    keep_no_body = Retention(raw_payload_grace=timedelta(0), request_grace=timedelta(days=30))
    uow = dataclasses.replace(platform.units.compliance(), retention=keep_no_body)
    purged = purge(Purge(), uow)
    assert len(purged.source_files) == 1
    with platform.engine.connect() as connection:
        (body,) = connection.execute(select(source_files.c.body)).scalars()
    assert bytes(body) == b"" and pieces(platform) == {}
    (report,) = remap_source(RemapSource("enrollment"), platform.units.sources())
    assert report.body_gone and not report.changes  # mapping nothing would remove them all
    assert len(stored(platform, "Patient")) == 2


def pieces(platform: Platform) -> dict[int, bytes]:
    with platform.engine.connect() as connection:
        rows = connection.execute(select(chunks.c.seq, chunks.c.body)).all()
    return {seq: bytes(body) for seq, body in rows}


def remapped(platform: Platform) -> dict[str, int]:
    (report,) = remap_source(RemapSource("enrollment"), platform.units.sources())
    return {change: count for change, count in report.changes.items() if count}


def test_a_file_kept_in_pieces_maps_again_unchanged_and_a_piece_moved_or_gone_fails_closed(
    open_platform,  # type: ignore[no-untyped-def]
) -> None:
    platform = open_platform()
    with mock.patch("payerbridge.store.file_pieces.PIECE_BYTES", 16):  # several pieces
        ingest_file(IngestFile("enrollment", "m.csv", FileBytes(MEMBERS)), platform.units.sources())
    assert len(pieces(platform)) == -(-len(MEMBERS) // 16)
    assert remapped(platform) == {"unchanged": 2}
    # A rotation moves each piece under the new key, a few a batch, still bound to its place.
    rotated = rotate_data_keys(RotateDataKeys("cli:test"), platform.units.data_keys())
    assert rotated.moved["source_file_chunks.body"] == len(pieces(platform))
    assert remapped(platform) == {"unchanged": 2}
    kept = pieces(platform)

    def rewrite(seq: int, body: bytes | None) -> None:
        with platform.engine.begin() as connection:
            where = chunks.c.seq == seq
            if body is None:
                connection.execute(delete(chunks).where(where))
            else:
                connection.execute(update(chunks).where(where).values(body=body))

    rewrite(0, kept[1])  # a piece moved to another place: its seal does not open there
    with pytest.raises(DataKeyUnavailable, match="altered or moved"):
        remapped(platform)
    rewrite(0, kept[0])
    rewrite(max(kept), None)  # the last piece gone: the pieces are not the file received
    with pytest.raises(DataKeyUnavailable, match="SHA-256 differs"):
        remapped(platform)
    assert len(stored(platform, "Patient")) == 2  # nothing mapped from a broken file


def test_a_file_kept_whole_before_pieces_maps_again_and_an_erasure_takes_its_pieces(
    open_platform,  # type: ignore[no-untyped-def]
) -> None:
    platform = open_platform()
    ingest_file(IngestFile("enrollment", "m.csv", FileBytes(MEMBERS)), platform.units.sources())
    with platform.engine.begin() as connection:  # as 0055 kept it: whole, sealed for its id
        file_id = connection.execute(select(source_files.c.id)).scalar_one()
        whole = at_rest(connection).seal_bytes(MEMBERS, SOURCE_FILE, file_id)
        connection.execute(delete(chunks))
        connection.execute(update(source_files).values(body=whole))
    assert remapped(platform) == {"unchanged": 2}

    other = b"member_id,first,last,sex,dob\nC3,Cy,Ng,F,19900101\n"
    ingest_file(IngestFile("roster", "r.csv", FileBytes(other)), platform.units.sources())
    with platform.engine.begin() as connection:
        connection.execute(insert(chunks).values(file_id=file_id, seq=0, body=whole))
    (ann,) = [p for p in stored(platform, "Patient") if p["identifier"][0]["value"] == "A1"]
    removed = erase_member(EraseMember(ann["id"], "ops", "request"), platform.units.compliance())
    assert removed["source_files"] == 1 and removed["source_file_chunks"] == 1
    assert len(pieces(platform)) == 1  # the roster's file, which did not give Ann
    with platform.engine.connect() as connection:
        assert connection.execute(select(func.length(source_files.c.body))).scalars().all() == [
            0,
            0,
        ]
