"""Bulk jobs, their members' outcomes and their Groups in the database (ADR 0018).

A chunk's outcomes commit in the unit of work that stored its decisions and consents,
on the DB-API path those took (``store.unit_of_work``): the guarded cursor move first,
then the rows. Everything else is Core."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, Row, delete, func, insert, select, update

from payerbridge.bulk.model import BulkJob, JobKind, JobStatus, OutputFile
from payerbridge.bulk.ports import (
    ExportedMember,
    LineRead,
    MemberOutcome,
    OutputLine,
    StoredGroup,
)
from payerbridge.store.at_rest import AtRest, at_rest
from payerbridge.store.dbapi import DialectSql, insert_rows
from payerbridge.store.sealed_fields import BULK_LINE, BULK_REQUEST, MEMBER_GROUP
from payerbridge.store.tables import (
    bulk_export_members,
    bulk_jobs,
    bulk_match_results,
    bulk_output_lines,
    fhir_resources,
    member_groups,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import BulkJobId, ClientId

__all__ = ["SqlBulkJobs"]

_OUTCOME_COLUMNS = ("job_id", "position", "result", "patient_id")
_MEMBER_COLUMNS = (
    "job_id",
    "position",
    "patient_id",
    "policy",
    "withheld",
    "code_sets",
    "withheld_count",
)
_LINE_COLUMNS = ("job_id", "seq", "file", "member", "ref", "mode", "body", "version_id")
# The job's rows besides its own, in the order they are dropped.
_JOB_ROWS = (bulk_match_results, bulk_export_members, bulk_output_lines, member_groups)
_JOB_COLUMNS = [c for c in bulk_jobs.c if c.name != "request_body"]


class _ChunkSql(DialectSql):
    def __init__(self, dialect: Any) -> None:
        super().__init__(dialect)
        self.move = self.sql(
            f"UPDATE {bulk_jobs.name} SET done = :done, updated_at = :at "
            "WHERE id = :id AND status = 'running' AND done = :before RETURNING id"
        )
        self.outcomes = self.rows_insert(bulk_match_results, _OUTCOME_COLUMNS)
        self.move_export = self.sql(
            f"UPDATE {bulk_jobs.name} SET done = :done, lines = :lines, updated_at = :at "
            "WHERE id = :id AND status = 'running' AND done = :before "
            "AND lines = :lines_before RETURNING id"
        )
        self.members = self.rows_insert(bulk_export_members, _MEMBER_COLUMNS)
        self.lines = self.rows_insert(bulk_output_lines, _LINE_COLUMNS, copy=True)


class SqlBulkJobs:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def create(self, unit: UnitOfWork, job: BulkJob, request_body: bytes) -> None:
        sql_unit(unit).connection.execute(
            insert(bulk_jobs).values(
                id=job.id,
                client_id=job.client_id,
                requester_npi=job.requester_npi,
                kind=job.kind.value,
                status=job.status.value,
                pdex_version=job.pdex_version,
                request_url=job.request_url,
                request_body=at_rest(sql_unit(unit)).seal(request_body, BULK_REQUEST, job.id),
                total=job.total,
                done=job.done,
                lines=job.lines,
                created_at=job.created_at,
                updated_at=job.updated_at,
                transaction_time=job.transaction_time,
            )
        )

    def get(self, job_id: BulkJobId) -> BulkJob | None:
        with self._reader.connect() as connection:
            row = connection.execute(select(*_JOB_COLUMNS).where(bulk_jobs.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def request_body(self, job_id: BulkJobId) -> bytes:
        with self._reader.connect() as connection:
            body = connection.execute(
                select(bulk_jobs.c.request_body).where(bulk_jobs.c.id == job_id)
            ).scalar_one()
        if not body:  # dropped once the job ended
            return b""
        return at_rest(self._reader).open(body, BULK_REQUEST, job_id)

    def start(self, unit: UnitOfWork, job_id: BulkJobId, *, at: datetime) -> bool:
        return self._move(unit, job_id, {JobStatus.ACCEPTED}, status=JobStatus.RUNNING, at=at)

    def commit_chunk(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        *,
        done_before: int,
        outcomes: Sequence[MemberOutcome],
        at: datetime,
    ) -> bool:
        sql_of = sql_unit(unit)
        sql = _ChunkSql.of(sql_of.dialect)
        cursor = sql_of.cursor()
        cursor.execute(
            sql.move,
            {
                "done": done_before + len(outcomes),
                "at": sql.timestamp(at),
                "id": job_id,
                "before": done_before,
            },
        )
        if cursor.fetchone() is None:
            return False
        rows = [
            {
                "job_id": job_id,
                "position": o.position,
                "result": o.result,
                "patient_id": o.patient_id,
            }
            for o in outcomes
        ]
        insert_rows(cursor, (sql.outcomes, rows))
        return True

    def commit_export_chunk(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        *,
        done_before: int,
        lines_before: int,
        members: Sequence[ExportedMember],
        lines: Sequence[OutputLine],
        at: datetime,
    ) -> bool:
        sql_of = sql_unit(unit)
        sql = _ChunkSql.of(sql_of.dialect)
        cursor = sql_of.copy_cursor()  # the lines go by COPY on PostgreSQL
        cursor.execute(
            sql.move_export,
            {
                "done": done_before + len(members),
                "lines": lines_before + len(lines),
                "at": sql.timestamp(at),
                "id": job_id,
                "before": done_before,
                "lines_before": lines_before,
            },
        )
        if cursor.fetchone() is None:
            return False
        member_rows = [
            {
                "job_id": job_id,
                "position": m.position,
                "patient_id": m.patient_id,
                "policy": m.policy,
                "withheld": orjson.dumps(list(m.withheld)).decode() if m.policy else None,
                "code_sets": m.code_sets,
                "withheld_count": m.withheld_count if m.policy else None,
            }
            for m in members
        ]
        keys = at_rest(sql_unit(unit))
        line_rows = [
            {
                "job_id": job_id,
                "seq": seq,
                "file": line.file,
                "member": line.member,
                "ref": line.ref,
                "mode": line.mode,
                "body": None
                if line.body is None
                else keys.seal_bytes(orjson.dumps(line.body), BULK_LINE, f"{job_id}|{seq}"),
                "version_id": line.version,
            }
            for seq, line in enumerate(lines, start=lines_before + 1)
        ]
        insert_rows(cursor, (sql.members, member_rows), (sql.lines, line_rows))
        return True

    def shared_refs(self, job_id: BulkJobId) -> set[str]:
        lines = bulk_output_lines
        with self._reader.connect() as connection:
            refs = connection.execute(
                select(lines.c.ref).where(lines.c.job_id == job_id, lines.c.mode == "include")
            ).scalars()
            return {str(ref) for ref in refs}

    def file_counts(self, job_id: BulkJobId) -> dict[str, int]:
        lines = bulk_output_lines
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(lines.c.file, func.count())
                .where(lines.c.job_id == job_id)
                .group_by(lines.c.file)
            ).all()
        return {str(file): int(count) for file, count in rows}

    def released_counts(self, job_id: BulkJobId) -> dict[str, tuple[int, int]]:
        members = bulk_export_members.c
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(
                    members.policy,
                    func.count(),
                    func.coalesce(func.sum(members.withheld_count), 0),
                )
                .where(members.job_id == job_id, members.policy.is_not(None))
                .group_by(members.policy)
            ).all()
        return {str(policy): (int(count), int(withheld)) for policy, count, withheld in rows}

    def line_page(self, job_id: BulkJobId, file: str, *, after: int, count: int) -> list[LineRead]:
        lines, members = bulk_output_lines, bulk_export_members
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(
                    lines.c.seq,
                    lines.c.member,
                    lines.c.ref,
                    lines.c.body,
                    lines.c.version_id,
                    fhir_resources.c.version_id.label("current_version"),
                    members.c.patient_id,
                    members.c.policy,
                    members.c.withheld,
                    members.c.code_sets,
                )
                .select_from(
                    lines.outerjoin(fhir_resources, fhir_resources.c.ref == lines.c.ref).outerjoin(
                        members,
                        (members.c.job_id == lines.c.job_id)
                        & (members.c.position == lines.c.member),
                    )
                )
                .where(lines.c.job_id == job_id, lines.c.file == file, lines.c.seq > after)
                .order_by(lines.c.seq)
                .limit(count)
            ).all()
        decisions: dict[int, ExportedMember] = {}  # a member's lines share one
        keys = at_rest(self._reader)
        return [
            LineRead(
                row.seq,
                row.member,
                row.ref,
                None if row.body is None else keys.open(row.body, BULK_LINE, f"{job_id}|{row.seq}"),
                row.version_id,
                row.current_version,
                _decision(row, decisions) if row.ref is not None else None,
            )
            for row in rows
        ]

    def outcomes(self, job_id: BulkJobId) -> list[MemberOutcome]:
        table = bulk_match_results
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(table.c.position, table.c.result, table.c.patient_id)
                .where(table.c.job_id == job_id)
                .order_by(table.c.position)
            ).all()
        return [MemberOutcome(row.position, row.result, row.patient_id) for row in rows]

    def complete(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        *,
        groups: Sequence[StoredGroup],
        output: Sequence[OutputFile],
        expires_at: datetime,
        at: datetime,
    ) -> bool:
        files = [
            {"type": f.type, "name": f.name, "count": f.count, "error": f.error} for f in output
        ]
        moved = self._move(
            unit,
            job_id,
            {JobStatus.RUNNING},
            status=JobStatus.COMPLETED,
            at=at,
            expires_at=expires_at,
            output=orjson.dumps(files).decode(),
            request_body="",  # the submitted demographics are in the Groups now
        )
        if moved and groups:
            keys = at_rest(sql_unit(unit))
            sql_unit(unit).connection.execute(
                insert(member_groups),
                [
                    {
                        "id": group.id,
                        "job_id": group.job_id,
                        "seq": seq,
                        "client_id": group.client_id,
                        "requester_npi": group.requester_npi,
                        "result": group.result,
                        "created_at": group.created_at,
                        "expires_at": group.expires_at,
                        "body": keys.seal(orjson.dumps(group.body), MEMBER_GROUP, group.id),
                    }
                    for seq, group in enumerate(groups)
                ],
            )
        return moved

    def fail(self, unit: UnitOfWork, job_id: BulkJobId, *, error: str, at: datetime) -> bool:
        return self._move(
            unit,
            job_id,
            {JobStatus.ACCEPTED, JobStatus.RUNNING},
            status=JobStatus.FAILED,
            at=at,
            error=error[:500],
            request_body="",
        )

    def cancel(self, unit: UnitOfWork, job_id: BulkJobId, *, at: datetime) -> bool:
        cancellable = set(JobStatus) - {JobStatus.CANCELLED}
        if not self._move(
            unit, job_id, cancellable, status=JobStatus.CANCELLED, at=at, request_body=""
        ):
            return False
        connection = sql_unit(unit).connection
        for table in _JOB_ROWS:
            connection.execute(delete(table).where(table.c.job_id == job_id))
        return True

    def unstarted(self, *, updated_before: datetime) -> list[tuple[BulkJobId, ClientId]]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(bulk_jobs.c.id, bulk_jobs.c.client_id).where(
                    bulk_jobs.c.status == JobStatus.ACCEPTED.value,
                    bulk_jobs.c.updated_at < updated_before,
                )
            ).all()
        return [(BulkJobId(row.id), ClientId(row.client_id)) for row in rows]

    def group(self, group_id: str) -> StoredGroup | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(member_groups).where(member_groups.c.id == group_id)
            ).first()
        return _group(row, at_rest(self._reader)) if row is not None else None

    def groups_of(self, job_id: BulkJobId) -> list[StoredGroup]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(member_groups)
                .where(member_groups.c.job_id == job_id)
                .order_by(member_groups.c.seq)
            ).all()
        return [_group(row, at_rest(self._reader)) for row in rows]

    def find_groups(
        self,
        client_id: ClientId,
        *,
        requester_npis: frozenset[str] | None,
        results: frozenset[str] | None,
        now: datetime,
    ) -> list[StoredGroup]:
        query = select(member_groups).where(
            member_groups.c.client_id == client_id, member_groups.c.expires_at > now
        )
        if requester_npis is not None:
            query = query.where(member_groups.c.requester_npi.in_(sorted(requester_npis)))
        if results is not None:
            query = query.where(member_groups.c.result.in_(sorted(results)))
        with self._reader.connect() as connection:
            rows = connection.execute(
                query.order_by(member_groups.c.created_at, member_groups.c.seq)
            ).all()
        return [_group(row, at_rest(self._reader)) for row in rows]

    def purge(self, unit: UnitOfWork, *, now: datetime) -> int:
        connection = sql_unit(unit).connection
        connection.execute(delete(member_groups).where(member_groups.c.expires_at <= now))
        expired = select(bulk_jobs.c.id).where(bulk_jobs.c.expires_at <= now)
        for table in (bulk_match_results, bulk_export_members, bulk_output_lines):
            connection.execute(delete(table).where(table.c.job_id.in_(expired)))
        kept = select(member_groups.c.job_id)  # a job's row stays while its Groups do
        result = connection.execute(
            delete(bulk_jobs).where(bulk_jobs.c.id.in_(expired), bulk_jobs.c.id.not_in(kept))
        )
        return result.rowcount

    def _move(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        allowed: set[JobStatus],
        *,
        status: JobStatus,
        at: datetime,
        **values: Any,
    ) -> bool:
        result = sql_unit(unit).connection.execute(
            update(bulk_jobs)
            .where(bulk_jobs.c.id == job_id, bulk_jobs.c.status.in_([s.value for s in allowed]))
            .values(status=status.value, updated_at=at, **values)
        )
        return result.rowcount == 1


def _job(row: Row[Any]) -> BulkJob:
    files = orjson.loads(row.output) if row.output else []
    return BulkJob(
        id=BulkJobId(row.id),
        client_id=ClientId(row.client_id),
        requester_npi=row.requester_npi,
        kind=JobKind(row.kind),
        status=JobStatus(row.status),
        pdex_version=row.pdex_version,
        request_url=row.request_url,
        total=row.total,
        done=row.done,
        lines=row.lines,
        created_at=row.created_at,
        updated_at=row.updated_at,
        transaction_time=row.transaction_time,
        expires_at=row.expires_at,
        output=tuple(
            OutputFile(f["type"], f["name"], f["count"], f.get("error", False)) for f in files
        ),
        error=row.error,
    )


def _decision(row: Any, decisions: dict[int, ExportedMember]) -> ExportedMember | None:
    if row.patient_id is None:
        return None
    decision = decisions.get(row.member)
    if decision is None:
        decision = decisions[row.member] = ExportedMember(
            row.member,
            row.patient_id,
            row.policy,
            tuple(orjson.loads(row.withheld)) if row.withheld else (),
            row.code_sets,
        )
    return decision


def _group(row: Row[Any], keys: AtRest) -> StoredGroup:
    return StoredGroup(
        id=row.id,
        job_id=BulkJobId(row.job_id),
        client_id=ClientId(row.client_id),
        requester_npi=row.requester_npi,
        result=row.result,
        created_at=row.created_at,
        expires_at=row.expires_at,
        body=orjson.loads(keys.open(row.body, MEMBER_GROUP, row.id)),
    )
