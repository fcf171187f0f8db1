"""Streaming import of FHIR NDJSON files and Bundles into the member store.

The hot path parses each line with orjson and checks only what the store relies on
(resource type, id, compartment link); it never builds a full model. Each file is
one transaction, the caller's unit of work: a file with any invalid line is rejected
whole, every bad line reported by number, and nothing of it is written. Its rows are
stamped with the unit's ``now``; once the unit has committed, the caller runs
``refresh_statistics``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from payerbridge.fhir.resources import (
    COMPARTMENT_FIELD,
    ID_PATTERN,
    SUPPORTED_TYPES,
    compartment_patient,
)
from payerbridge.store.dbapi import cursor_of
from payerbridge.store.members import ResourceRow, resolve_compartments, write_batch
from payerbridge.store.tables import (
    fhir_resources,
    fhir_tokens,
    identity_blocking_keys,
    identity_member_records,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = [
    "FileReport",
    "IndexMembers",
    "LineError",
    "import_file",
    "import_files",
    "parse_line",
    "refresh_statistics",
]

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
# What a member's identity record is made of (the Patient and its Coverage).
_MEMBER_TYPES = frozenset({"Patient", "Coverage"})
MAX_REPORTED_ERRORS = 100
# The page cache of an import's connection on SQLite, in KiB (an upper bound, not an
# allocation: see _cache_for_bulk_load).
_BULK_LOAD_CACHE_KIB = 1024 * 1024
# On PostgreSQL, the resources an import writes before its first ANALYZE (see
# _GrowingStatistics); then one each time the count has doubled.
_FIRST_ANALYZE_RESOURCES = 20_000

# Indexes, in the import's unit of work, the members whose Patient or Coverage it wrote.
IndexMembers = Callable[[UnitOfWork, Sequence[str]], object]


@dataclass(frozen=True)
class LineError:
    line: int
    text: str


@dataclass
class FileReport:
    path: Path
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    lines: int = 0

    @property
    def accepted(self) -> bool:
        return self.error_count == 0

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


class _Invalid(Exception):
    pass


def _check(resource: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """Validate one resource; return it with its compartment patient and, for resources
    whose compartment comes through another resource, that resource's ref."""
    if not isinstance(resource, dict):
        raise _Invalid("expected a JSON object (a FHIR resource)")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise _Invalid("missing resourceType")
    if resource_type not in SUPPORTED_TYPES:
        raise _Invalid(f"unsupported resourceType '{resource_type[:64]}'")
    resource_id = resource.get("id")
    if not isinstance(resource_id, str) or not ID_PATTERN.match(resource_id):
        raise _Invalid(f"{resource_type}.id is missing or not a valid FHIR id")
    patient_id = compartment_patient(resource)
    via: str | None = None
    if patient_id is None and resource_type == "Provenance":
        targets = resource.get("target")
        if not isinstance(targets, list) or not targets:
            raise _Invalid("Provenance.target is required")
        first = targets[0].get("reference") if isinstance(targets[0], dict) else None
        via = first if isinstance(first, str) else None
    elif patient_id is None and COMPARTMENT_FIELD[resource_type] is not None:
        field_name = COMPARTMENT_FIELD[resource_type]
        raise _Invalid(f"{resource_type}.{field_name} must reference a Patient (Patient/<id>)")
    elif patient_id is not None and not ID_PATTERN.match(patient_id):
        raise _Invalid(f"{resource_type} references an invalid Patient id")
    return resource, patient_id, via


def parse_line(raw: bytes) -> list[tuple[dict[str, Any], str | None, str | None]]:
    """One NDJSON line → its resources (a Bundle line expands to its entries)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Invalid(f"not valid JSON ({exc.args[0].split(':')[0]})") from exc
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            raise _Invalid("Bundle.entry must be an array")
        checked = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or "resource" not in entry:
                raise _Invalid(f"Bundle.entry[{index}] has no resource")
            try:
                checked.append(_check(entry["resource"]))
            except _Invalid as exc:
                raise _Invalid(f"Bundle.entry[{index}]: {exc}") from exc
        return checked
    return [_check(value)]


def _units(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """(line number, content, bytes consumed): one unit per line for NDJSON, one for a
    ``.json`` file (a Bundle or a single resource)."""
    with path.open("rb") as handle:
        if path.suffix.lower() == ".json":
            data = handle.read()
            yield 1, data, len(data)
            return
        for number, line in enumerate(handle, start=1):
            yield number, line, len(line)


def import_file(
    unit: UnitOfWork,
    path: Path,
    *,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
    index_members: IndexMembers | None = None,
) -> FileReport:
    """Import one file atomically in ``unit``; ``progress`` receives bytes consumed.

    ``index_members`` receives ``unit`` and the ids of the members whose Patient or
    Coverage the file wrote, in the order the file first names them (the order their
    rows were written), so the identity index never disagrees with the member data."""
    (report,) = import_files(
        unit,
        [path],
        source=source,
        progress=None if progress is None else lambda _, size: progress(size),
        index_members=index_members,
    )
    return report


def import_files(
    unit: UnitOfWork,
    paths: Sequence[Path],
    *,
    source: str | None = None,
    progress: Callable[[Path, int], None] | None = None,
    index_members: IndexMembers | None = None,
) -> list[FileReport]:
    """Import files in ``unit``'s one transaction, each of them all-or-nothing: a rejected
    file is rolled back to its savepoint and the others are kept. A lone file takes no
    savepoint: rejected, it rolls back the unit's transaction, so the unit holds the
    import alone. ``progress`` receives each file and the bytes of it consumed.

    The members whose Patient or Coverage any accepted file wrote are indexed once, at
    the end, before the one commit: a plan's FHIR server exports one file per type
    (``Patient.ndjson``, then ``Coverage.ndjson``), and indexing each file's members as
    it was loaded indexed every member twice, the first time from its Patient alone
    (ADR 0021 amendment 5)."""
    reports: list[FileReport] = []
    touched: dict[str, None] = {}  # an ordered set: reading back in write order
    connection = sql_unit(unit).connection
    with _cache_for_bulk_load(connection):
        _plan_for_growing_tables(connection)
        statistics = _GrowingStatistics(connection)
        alone = len(paths) == 1  # no savepoint: a rejected file rolls back the transaction
        for path in paths:
            savepoint = None if alone else connection.begin_nested()
            report, members = _load_file(
                connection,
                path,
                source=source or f"import:{path.name}",
                at=unit.now,
                progress=None if progress is None else partial(progress, path),
                statistics=statistics,
            )
            reports.append(report)
            if report.accepted:
                touched.update(members)
                if savepoint is not None:
                    savepoint.commit()
                continue
            if savepoint is not None:
                savepoint.rollback()
            else:
                connection.rollback()
        if index_members is not None and touched:
            index_members(unit, list(touched))
    return reports


def _load_file(
    connection: Connection,
    path: Path,
    *,
    source: str,
    at: datetime,
    progress: Callable[[int], None] | None,
    statistics: _GrowingStatistics,
) -> tuple[FileReport, dict[str, None]]:
    """Write one file's resources in the caller's transaction; its report and the members
    whose Patient or Coverage it wrote, in the order it first names them. A rejected
    file's report lists its bad lines; the caller rolls back what it wrote."""
    report = FileReport(path=path)
    batch: list[ResourceRow] = []
    pending: dict[str, str] = {}
    touched: dict[str, None] = {}
    for number, raw, size in _units(path):
        report.lines = number
        if progress is not None:
            progress(size)
        if not raw.strip():
            continue
        try:
            checked = parse_line(raw)
        except _Invalid as exc:
            report.error_count += 1
            if len(report.errors) < MAX_REPORTED_ERRORS:
                report.errors.append(LineError(number, str(exc)))
            continue
        if report.error_count:
            continue  # the file is rejected; keep reading only to report every bad line
        for resource, patient_id, via in checked:
            row = ResourceRow.from_resource(resource, patient_id)
            batch.append(row)
            report.counts[row.resource_type] += 1
            if via is not None:
                pending[row.ref] = via
            if row.resource_type in _MEMBER_TYPES and patient_id is not None:
                touched[patient_id] = None
        if len(batch) >= BATCH_SIZE:
            write_batch(connection, batch, source=source, at=at)
            statistics.written(len(batch))
            batch.clear()
    if report.error_count:
        report.counts.clear()
        logger.warning(
            "import rejected", extra={"file": path.name, "invalid_lines": report.error_count}
        )
        return report, {}
    write_batch(connection, batch, source=source, at=at)
    resolve_compartments(connection, pending)
    logger.info("import accepted", extra={"file": path.name, "resources": report.resources})
    return report, touched


# The tables an import writes (identity's index included), which it vacuums and analyzes
# once committed.
_LOADED_TABLES = (
    fhir_resources,
    fhir_tokens,
    identity_member_records,
    identity_blocking_keys,
)


def _plan_for_growing_tables(connection: Connection) -> None:
    """On PostgreSQL, plan each statement of the import for the tables as they are now.
    A prepared statement's cached plan is made while the tables are small (a sequential
    scan is cheapest then) and kept as they grow inside the import's one transaction,
    which made a large import quadratic."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


class _GrowingStatistics:
    """On PostgreSQL, the statistics of the tables an import grows, kept within a factor of
    two of their size inside its one transaction.

    A table that was never analyzed has no statistics, and the planner then guesses that
    each value of ``ref = ANY(:refs)`` matches half a percent of the rows: for a batch's
    thousand refs, the whole table. Each batch's delete of its resources' old tokens
    scanned every token written so far, and an import grew quadratic (ADR 0021 amendment
    3). ANALYZE sees the rows of its own transaction. SKIP_LOCKED:
    an import running beside another, which holds the tables' statistics lock until it
    commits, goes on without and never waits for it."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection if connection.dialect.name == "postgresql" else None
        self._written = 0
        self._next = _FIRST_ANALYZE_RESOURCES

    def written(self, resources: int) -> None:
        """``resources`` more have been written (in any of the import's files)."""
        self._written += resources
        if self._connection is None or self._written < self._next:
            return
        self._connection.exec_driver_sql(
            f"ANALYZE (SKIP_LOCKED) {fhir_resources.name}, {fhir_tokens.name}"
        )
        self._next = 2 * self._written


@contextmanager
def _cache_for_bulk_load(connection: Connection) -> Iterator[None]:
    """On SQLite, a page cache the size of a large import's working set for its one
    transaction. With the default few megabytes, the b-trees it grows (the blocking keys
    above all) no longer fit once a few hundred thousand members are in: each insert
    then reads its page back, and pages changed and pushed out spill to the WAL again and
    again. The cache takes memory only as pages are read, and gives it back after."""
    if connection.dialect.name != "sqlite":
        yield
        return
    # On the DB-API connection: a rejected file's rollback has ended the SQLAlchemy
    # transaction by the time the cache is given back.
    with cursor_of(connection) as cursor:
        (before,) = cursor.execute("PRAGMA cache_size").fetchone()
        cursor.execute(f"PRAGMA cache_size = -{_BULK_LOAD_CACHE_KIB}")
    try:
        yield
    finally:
        with cursor_of(connection) as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


def refresh_statistics(engine: Engine) -> None:
    """On PostgreSQL, ``VACUUM (ANALYZE)`` what an import wrote, as after any bulk load,
    once its unit has committed.
    Until autovacuum gets there (if it is on at all) the planner would take the tables
    for empty, and training and matching would run many times slower. The vacuum also
    marks the new pages all-visible: the blocking-key and record reads of matching are
    then index-only, and no later reader pays for setting the rows' hint bits."""
    if engine.dialect.name != "postgresql":
        return
    tables = ", ".join(t.name for t in _LOADED_TABLES)
    # VACUUM runs outside a transaction block.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {tables}")
