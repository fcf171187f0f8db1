"""A ``$bulk-member-match`` job on a real database: a run cut off mid-chunk resumes after
the last committed chunk without deciding or writing anyone twice, and a job cancelled
while it runs stops at its next chunk with nothing of it left."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.bulk import export
from payerbridge.bulk.export import (
    ExportAsked,
    GroupExportAsked,
    accept_group_export,
    export_file_lines,
    run_export,
)
from payerbridge.bulk.member_match import (
    CancelJob,
    MemberMatchAsked,
    accept_member_match,
    cancel_job,
    run_member_match,
)
from payerbridge.bulk.model import JobStatus
from payerbridge.bulk.unit import BulkUnit
from payerbridge.config import load_settings
from payerbridge.consent.model import Requester
from payerbridge.fhir.bulk_export import ExportRequest
from payerbridge.fhir.bulk_member_match import parse_bulk_member_match_request
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.service import request_record
from payerbridge.store.tables import (
    bulk_match_results,
    bulk_output_lines,
    consents,
    identity_decisions,
)
from payerbridge.types import ClientId
from tests.builders import a_coverage, a_member_bundle, a_patient

NEW_NPI, OLD_NPI = "1234567893", "1245319599"
REQUESTER = Requester(client_id=ClientId("newplan"), npi=NEW_NPI)
# Unrelated people (given, family, birth date); chunks of 2: three full ones and one of 1.
PEOPLE = [
    ("Ana", "Garcia", "1980-02-03"),
    ("Bilal", "Rahman", "1966-09-12"),
    ("Chen", "Wei", "1991-04-27"),
    ("Dara", "Okafor", "1958-12-01"),
    ("Elena", "Petrova", "1973-06-18"),
    ("Farid", "Haddad", "2001-03-09"),
    ("Grace", "Lindqvist", "1947-10-30"),
]
MEMBERS = len(PEOPLE)


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    settings = load_settings(
        data_dir=tmp_path,
        database_url=env.get("PAYERBRIDGE_DATABASE_URL"),
        org_npi=OLD_NPI,
        bulk_chunk_members=2,
    )
    platform = build_platform(settings)
    resources = []
    for n, (given, family, birth) in enumerate(PEOPLE):
        resources.append(
            a_patient(f"m{n}", given=given, family=family, birth_date=birth, member_id=f"M{n}00")
        )
        resources.append(
            a_coverage(f"c{n}", patient=f"m{n}", member_id=f"M{n}00", subscriber_id=f"M{n}00")
        )
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    assert platform.import_members(members).accepted
    yield platform
    platform.close()


def request_body() -> dict[str, Any]:
    bundles = [
        a_member_bundle(f"sub-{n}", given, family, birth, "female", f"M{n}00")
        for n, (given, family, birth) in enumerate(PEOPLE)
    ]
    return {"resourceType": "Parameters", "parameter": bundles}


def accepted(uow: BulkUnit) -> str:
    body = request_body()
    job = accept_member_match(
        MemberMatchAsked(
            body,
            orjson.dumps(body),
            requester=REQUESTER,
            request_url="http://old.example/fhir/Group/$bulk-member-match",
            pdex_version="2.2",
            request_id=None,
        ),
        uow,
    )
    return job.id


class Interrupted(Exception):
    pass


class Flaky:
    """The identity store, which calls ``then`` before answering the ``at``-th chunk's
    candidate lookup (0-based), while that chunk is being decided."""

    def __init__(self, inner: Any, at: int, then: Callable[[], None]) -> None:
        self._inner, self._at, self._then, self.calls = inner, at, then, 0

    def candidates_of_many(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls - 1 == self._at:
            self._then()
        return self._inner.candidates_of_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def count(platform: Platform, table: Any) -> int:
    with platform.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_run_cut_off_mid_chunk_resumes_after_the_last_commit(platform: Platform) -> None:
    uow = platform.units.bulk()
    job_id = accepted(uow)

    def crash() -> None:
        raise Interrupted

    # Cut off deciding the third chunk: chunks 1 and 2 (members 0-3) are committed.
    flaky = dataclasses.replace(uow, identity=Flaky(uow.identity, 2, crash))
    with pytest.raises(Interrupted):
        run_member_match(job_id, flaky)
    job = uow.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.RUNNING and job.done == 4
    assert count(platform, identity_decisions) == 4
    assert count(platform, consents) == 4

    assert run_member_match(job_id, uow) is JobStatus.COMPLETED
    outcomes = uow.jobs.outcomes(job_id)
    assert [o.position for o in outcomes] == list(range(MEMBERS))
    assert [o.patient_id for o in outcomes] == [f"m{n}" for n in range(MEMBERS)]
    assert count(platform, identity_decisions) == MEMBERS
    assert count(platform, consents) == MEMBERS
    [matched] = uow.jobs.groups_of(job_id)
    assert matched.body["quantity"] == MEMBERS
    # Run again (a recovered workflow that finds the job done): nothing changes.
    assert run_member_match(job_id, uow) is JobStatus.COMPLETED
    assert count(platform, identity_decisions) == MEMBERS
    assert len(uow.jobs.groups_of(job_id)) == 1


def test_a_job_cancelled_while_it_runs_stops_and_leaves_nothing(platform: Platform) -> None:
    uow = platform.units.bulk()
    job_id = accepted(uow)

    def cancel() -> None:
        cancel_job(CancelJob(job_id, REQUESTER.client_id, None), uow)

    flaky = dataclasses.replace(uow, identity=Flaky(uow.identity, 1, cancel))
    assert run_member_match(job_id, flaky) is JobStatus.CANCELLED
    job = uow.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert count(platform, bulk_match_results) == 0
    assert uow.jobs.groups_of(job_id) == []
    assert uow.jobs.request_body(job_id) == b""  # the submitted demographics are gone


def test_expired_output_and_groups_are_purged_and_an_unstarted_job_is_found(
    platform: Platform,
) -> None:
    uow = platform.units.bulk()
    job_id = accepted(uow)
    job = uow.jobs.get(job_id)
    assert job is not None
    later = job.created_at + timedelta(seconds=30)
    assert uow.jobs.unstarted(updated_before=later) == [(job_id, "newplan")]
    assert run_member_match(job_id, uow) is JobStatus.COMPLETED
    assert uow.jobs.unstarted(updated_before=later) == []
    done = uow.jobs.get(job_id)
    assert done is not None and done.expires_at is not None
    assert uow.jobs.request_body(job_id) == b""  # the demographics live in the Groups now
    # Past the files' expiry, the Groups stay (they live longer): so does the job's row.
    with uow:
        assert uow.jobs.purge(uow, now=done.expires_at + timedelta(seconds=1)) == 0
    assert count(platform, bulk_match_results) == 0
    assert len(uow.jobs.groups_of(job_id)) == 1
    # Past the Groups' expiry, nothing of the job is left.
    with uow:
        assert uow.jobs.purge(uow, now=done.expires_at + timedelta(days=365)) == 1
    assert uow.jobs.get(job_id) is None and uow.jobs.groups_of(job_id) == []


def test_a_chunks_candidates_read_together_are_each_requests_own(platform: Platform) -> None:
    index = platform.units.bulk().identity
    members = parse_bulk_member_match_request(request_body())
    key_sets = [
        blocking_keys(request_record(m.request), secret=index.blocking_secret) for m in members
    ]
    key_sets.append(frozenset({"no-such-key"}))
    together = index.candidates_of_many(key_sets)
    assert together == [index.candidates(keys) for keys in key_sets]
    assert [ids[0][0] for ids in together[:MEMBERS]] == [f"m{n}" for n in range(MEMBERS)]
    assert together[-1] == []
    assert index.candidates_of_many([]) == []


def export_files(uow: BulkUnit, group_id: str) -> dict[str, list[bytes]]:
    request = ExportRequest(None, None, None, None)
    asked = ExportAsked(request, REQUESTER, "x", None)
    job = accept_group_export(GroupExportAsked(group_id, asked), uow)
    assert run_export(job.id, uow) is JobStatus.COMPLETED
    done = uow.jobs.get(job.id)
    assert done is not None
    return {
        file.type: b"".join(export_file_lines(done, file, uow)).splitlines() for file in done.output
    }


def test_an_export_past_a_chunks_bodies_goes_by_reference_and_downloads_the_same(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    uow = platform.units.bulk()
    job_id = accepted(uow)
    assert run_member_match(job_id, uow) is JobStatus.COMPLETED
    [group] = uow.jobs.groups_of(job_id)
    with_bodies = export_files(uow, group.id)
    # Room for one member's two bodies a chunk (of two): the other goes by reference.
    monkeypatch.setattr(export, "_CHUNK_BODIES", 2)
    by_reference = export_files(uow, group.id)
    with platform.engine.connect() as connection:
        written = connection.execute(
            select(bulk_output_lines.c.job_id, func.count(bulk_output_lines.c.body))
            .where(bulk_output_lines.c.ref.is_not(None))
            .group_by(bulk_output_lines.c.job_id)
        ).all()
    assert sorted(n for _, n in written) == [2 * ((MEMBERS + 1) // 2), 2 * MEMBERS]
    assert by_reference.keys() == with_bodies.keys() == {"Coverage", "Patient", "Provenance"}
    assert by_reference["Patient"] == with_bodies["Patient"]
    assert by_reference["Coverage"] == with_bodies["Coverage"]
