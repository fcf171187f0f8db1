"""A replicated source's files mapped and kept (ADR 0031): each file read, mapped and kept
in one transaction, with what it gave, so that a new mapping version can map every kept
file again and say what changed.

The resources are kept as the source's (``source:<id>``); the members whose Patient or
Coverage a file gave are indexed for matching in the same transaction. A resource another
source already gave differently is not overwritten: it is held as a conflict, naming the
other source and the fields that differ. The store (``SourceFileStore``) only keeps and
reads; what a file gave, and what changed, is decided here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from payerbridge.backends.ingestion import (
    MAX_REPORTED_PROBLEMS,
    MAX_REPORTED_WARNINGS,
    Batch,
    FileReport,
    Intake,
    MappingRun,
    Resource,
    conflict,
    differing_fields,
    map_batches,
)
from payerbridge.backends.mapping import Mapping
from payerbridge.backends.model import FileContent, MappedResource, NewSourceFile
from payerbridge.backends.parallel import Item, SecondProcess, read_on_second_process
from payerbridge.backends.ports import SourceFileStore
from payerbridge.backends.readers import read_stream
from payerbridge.backends.sources import ReplicatedSourceSpec
from payerbridge.transactions import UnitOfWork

__all__ = ["KeptSourceFiles"]

logger = logging.getLogger(__name__)

_MEMBER_TYPES = frozenset({"Patient", "Coverage"})
_DIGEST_PIECE = 1 << 20  # bytes hashed at a time: the file is never held whole


@dataclass
class _FileRun:
    """One file mapped: what it gave before and has not given again yet (None: first
    mapped), and the members whose Patient or Coverage it gave (in order, once each).

    What it gives is not held here: the store keeps each ref the file gives once,
    ignoring one it already has (issue 71: a million claims' refs were 240 MB here)."""

    file_id: str
    report: FileReport
    mapping: Mapping
    unseen: set[str] | None
    touched: dict[str, None] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"source:{self.report.source_id}"


class KeptSourceFiles:
    """``service.SourceFiles``: a replicated source's files mapped through the intake
    and kept in ``store``; ``compartment_of`` says whose compartment a resource is in."""

    def __init__(
        self,
        store: SourceFileStore,
        intake: Intake,
        *,
        compartment_of: Callable[[Resource], str | None],
        new_id: Callable[[], str],
        second: SecondProcess | None = None,
    ) -> None:
        self.store = store
        self.intake = intake
        self.compartment_of = compartment_of
        self.new_id = new_id
        self.second = second  # when a large file is read on a second process

    def ingest(
        self,
        unit: UnitOfWork,
        spec: ReplicatedSourceSpec,
        mapping: Mapping,
        name: str,
        content: FileContent,
    ) -> FileReport:
        """Map and keep one file of ``spec``'s, in ``unit``; the same file again (by
        digest) is reported as a duplicate and changes nothing. The content is read in
        pieces, three times (digest, kept, mapped), never held whole (issue 71)."""
        digest = _digest(content)
        report = FileReport(spec.id, name, digest, str(mapping.ref))
        existing = self.store.find(unit, spec.id, digest)
        if existing is not None:
            report.file_id, report.duplicate = existing, True
            return report
        file_id = self.new_id()
        report.file_id = file_id
        self.store.add(
            unit, NewSourceFile(file_id, spec.id, name[:300], digest, content, str(mapping.ref))
        )
        self._map_file(unit, spec, name, content, _FileRun(file_id, report, mapping, None))
        return report

    def remap(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, mapping: Mapping
    ) -> list[FileReport]:
        """Map every kept file of ``spec`` again with ``mapping`` (a new version, or the
        one rolled back to), in ``unit``: each report says what was added, changed (other
        than the mapping's tag), left unchanged and no longer given (removed)."""
        reports = []
        for kept in self.store.kept(unit, spec.id):
            report = FileReport(spec.id, kept.name, kept.sha256, str(mapping.ref), file_id=kept.id)
            if not kept.has_body:
                # Purged or erased (ADR 0038): mapping nothing would remove all it gave.
                report.body_gone = True
                reports.append(report)
                continue
            run = _FileRun(kept.id, report, mapping, self.store.given_by(unit, kept.id))
            content = self.store.content(unit, kept)
            self._map_file(unit, spec, kept.name, content, run)
            self.store.remapped(unit, kept.id, str(mapping.ref))
            reports.append(report)
        return reports

    def files(self, source_id: str) -> list[dict[str, Any]]:
        return self.store.files(source_id)

    def _map_file(
        self,
        unit: UnitOfWork,
        spec: ReplicatedSourceSpec,
        name: str,
        content: FileContent,
        run: _FileRun,
    ) -> None:
        mapping, report = run.mapping, run.report
        records: Iterator[Item]
        with contextlib.ExitStack() as opened:
            if self.second is not None and self.second.applies(content.size):
                there = read_on_second_process(mapping.input, content, name, mapping.input_options)
                # Closed at once if mapping fails: the second process ends with it.
                records = opened.enter_context(contextlib.closing(there))
            else:
                stream = opened.enter_context(content.open())
                records = read_stream(mapping.input, stream, name, mapping.input_options)
            self._map_records(unit, spec, records, run)
        logger.info(
            "source file mapped",
            extra={
                "source": spec.id,
                "file_sha256": report.sha256,
                "mapping": report.mapping,
                "records": report.records,
                "problems": report.problem_count,
                "quarantined": report.held,
                "records_quarantined": report.records_quarantined,
                "records_not_mapped": report.records_not_mapped,
                "warnings": sum(report.warnings.values()),
            },
        )

    def _map_records(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, records: Iterator[Item], run: _FileRun
    ) -> None:
        mapping, report = run.mapping, run.report
        mapping_run = MappingRun(
            mapping,
            spec.id,
            spec.namespace,
            file_digest=report.sha256,
            recorded=unit.now,
            compartment_of=self.compartment_of,
        )
        batches = map_batches(records, mapping_run, self.intake)
        for batch in batches:
            _note(report, batch)
            if batch.held:
                self.intake.hold(unit, spec.id, mapping, batch.held)
            if batch.resources:
                self._keep(unit, batch, run)
        if run.unseen is not None:
            gone = sorted(run.unseen)
            report.changes["removed"] = len(gone)
            self.store.forget(unit, run.file_id, gone)
        self.store.report(unit, run.file_id, report.to_json())
        if run.touched:
            self.intake.index_members(unit, list(run.touched))

    def _keep(self, unit: UnitOfWork, batch: Batch, run: _FileRun) -> None:
        """Keep a batch's resources as the source's, and note what the file gave."""
        resources = [
            MappedResource(resource, member, orjson.dumps(resource).decode())
            for resource, member in batch.resources
        ]
        resources = self._without_conflicts(unit, resources, run)
        if not resources:
            return
        if run.unseen is not None:
            _classify(self.store.stored(unit, [r.ref for r in resources]), resources, run.report)
        fresh = list(dict.fromkeys(resource.ref for resource in resources))
        if run.unseen is not None:  # mapped again: what it gave before is kept already
            given = run.unseen.intersection(fresh)
            run.unseen -= given
            fresh = [ref for ref in fresh if ref not in given]
        self.store.keep(unit, run.file_id, resources, source=run.source, fresh=fresh)
        for resource in resources:
            if resource.resource_type in _MEMBER_TYPES and resource.patient_id is not None:
                run.touched[resource.patient_id] = None

    def _without_conflicts(
        self, unit: UnitOfWork, resources: list[MappedResource], run: _FileRun
    ) -> list[MappedResource]:
        """``resources`` but those another source already gave: the same content is not
        kept twice, other content is held as a conflict."""
        refs = [r.ref for r in resources if r.resource_type != "Provenance"]
        others = self.store.held_elsewhere(unit, refs, source=run.source)
        if not others:
            return resources
        kept, conflicts = [], []
        for resource in resources:
            other = others.get(resource.ref)
            if other is None:
                kept.append(resource)
                continue
            fields = differing_fields(orjson.loads(other[1]), orjson.loads(resource.body))
            if not fields:
                continue  # the same as the other source gave: nothing to keep twice
            conflicts.append(conflict(orjson.loads(resource.body), other[0], fields))
        if conflicts:
            run.report.conflicts += len(conflicts)
            self.intake.hold(unit, run.report.source_id, run.mapping, conflicts)
        return kept


def _digest(content: FileContent) -> str:
    """The content's SHA-256, read a piece at a time."""
    digest = hashlib.sha256()
    with content.open() as stream:
        while piece := stream.read(_DIGEST_PIECE):
            digest.update(piece)
    return digest.hexdigest()


def _note(report: FileReport, batch: Batch) -> None:
    """Add a batch to the file's report: records read, mapped, quarantined (refused
    whole by the reader, held) and not mapped (refused by the mapping), the reasons of
    both among the problems; warnings by kind, the first hundred kept."""
    report.records += batch.records + len(batch.quarantined)
    report.mapped += batch.mapped
    report.records_quarantined += len(batch.quarantined)
    report.records_not_mapped += batch.records - batch.mapped
    report.counts.update(batch.counts)
    report.held += len(batch.held)
    report.problem_count += len(batch.problems)
    room = MAX_REPORTED_PROBLEMS - len(report.problems)
    if room > 0:
        report.problems.extend(batch.problems[:room])
    report.warnings.update(w.kind or "other" for w in batch.warnings)
    room = MAX_REPORTED_WARNINGS - len(report.warning_examples)
    if room > 0:
        report.warning_examples.extend(batch.warnings[:room])


def _classify(
    stored: dict[str, bytes], resources: Sequence[MappedResource], report: FileReport
) -> None:
    """Count the mapped resources as added, changed or unchanged against what is kept
    (not their Provenance, which each run records anew)."""
    for resource in resources:
        if resource.resource_type == "Provenance":
            continue  # ours, recorded anew by every mapping run
        before = stored.get(resource.ref)
        if before is None:
            report.changes["added"] += 1
        elif _content(before) == _content(resource.body):
            report.changes["unchanged"] += 1
        else:
            report.changes["changed"] += 1


def _content(body: str | bytes) -> bytes:
    """A resource's content without its meta (versions, the mapping's tag): what a
    reader of the data would see change."""
    resource = orjson.loads(body)
    resource.pop("meta", None)
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
