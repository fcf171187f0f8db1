"""Live sources at request time (ADR 0031): a member's records asked of every live source
that holds the member, all at once and each within its budget, then mapped, checked
against their profiles and kept beside the rest, so that ``$everything`` and searches
decide and page over them as over any record. What a source could not give is a gap the
answer names; it never makes the answer silently short.

Asking holds no database connection (the calls may take the whole budget); keeping runs
in the answer's unit of work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from payerbridge.backends.ingestion import Held, Intake, MappingRun, map_batches
from payerbridge.backends.model import Location, SourceRecord
from payerbridge.backends.ports import LiveSource, RecordsQuery, SourceAnswer, SourceGap
from payerbridge.backends.sources import LiveSourceSpec, Sources
from payerbridge.errors import InvalidInput, PartnerError
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = ["AskedSource", "LiveAnswers", "LiveSources", "RosterReport", "SourceMembers"]

logger = logging.getLogger(__name__)
Resource = dict[str, Any]


class SourceMembers(Protocol):
    """Which member is which at a live source (``store.source_files``)."""

    def keys_of(self, member: MemberId) -> list[tuple[str, str]]:
        """(source id, the member's id there) for every live source that holds them."""
        ...

    def link(self, unit: UnitOfWork, source_id: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Keep (the member's id at the source, our member id) pairs, in ``unit``."""
        ...


class Writer(Protocol):
    def write(
        self,
        unit: UnitOfWork,
        resources: list[tuple[Resource, str | None]],
        *,
        source: str,
        at: datetime,
    ) -> None: ...

    def prune(
        self, unit: UnitOfWork, *, source: str, member: str, types: frozenset[str], keep: set[str]
    ) -> int:
        """Remove the member's ``types`` kept from ``source`` but those in ``keep``;
        how many."""
        ...


@dataclass(frozen=True)
class AskedSource:
    """One live source's answer to one query."""

    spec: LiveSourceSpec
    query: RecordsQuery
    answer: SourceAnswer


@dataclass(frozen=True)
class LiveAnswers:
    """What the live sources answered about one member, to keep in the answer's unit."""

    member: MemberId
    asked: list[AskedSource] = field(default_factory=list)


@dataclass
class RosterReport:
    source_id: str
    members: int = 0
    problems: int = 0
    held: int = 0


class LiveSources:
    """The live sources of the deployment with their adapters, as the disclosure room
    asks them (its ``LiveRecords`` port)."""

    def __init__(
        self,
        sources: Sources,
        adapters: dict[str, LiveSource],
        links: SourceMembers,
        writer: Writer,
        intake: Intake,
    ) -> None:
        self.sources = sources
        self.adapters = adapters
        self.links = links
        self.writer = writer
        self.intake = intake

    def holds(self, member: MemberId) -> bool:
        return bool(self.adapters) and any(
            source_id in self.adapters for source_id, _ in self.links.keys_of(member)
        )

    def ask(
        self, member: MemberId, types: frozenset[str] | None, since: datetime | None
    ) -> LiveAnswers:
        """Every live source that holds ``member``, asked at once for the ``types`` it
        answers for, each within its own budget."""
        wanted: list[tuple[LiveSourceSpec, RecordsQuery]] = []
        if not self.adapters:
            return LiveAnswers(member)
        for source_id, key in self.links.keys_of(member):
            spec = self.sources.specs.get(source_id)
            if not isinstance(spec, LiveSourceSpec) or source_id not in self.adapters:
                continue  # a source no longer configured: nothing to ask
            held = frozenset(spec.types) if types is None else frozenset(spec.types) & types
            if held:
                wanted.append((spec, RecordsQuery(key, held, since)))
        if not wanted:
            return LiveAnswers(member)
        with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
            answers = list(pool.map(lambda asked: self._ask_one(*asked), wanted))
        return LiveAnswers(
            member,
            [AskedSource(spec, q, a) for (spec, q), a in zip(wanted, answers, strict=True)],
        )

    def _ask_one(self, spec: LiveSourceSpec, query: RecordsQuery) -> SourceAnswer:
        started = time.monotonic()
        try:
            answer = self.adapters[spec.id].records(query, budget_seconds=spec.budget_seconds)
        except Exception:  # an adapter's bug must not take the answer down: a gap
            logger.exception("live source failed", extra={"source": spec.id})
            types = tuple(sorted(query.types or spec.types))
            answer = SourceAnswer(
                gaps=[SourceGap(spec.id, types, "source-error", f"source '{spec.id}' failed")]
            )
        logger.info(
            "live source asked",
            extra={
                "source": spec.id,
                "records": len(answer.records),
                "gaps": len(answer.gaps),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return answer

    def keep(self, unit: UnitOfWork, answers: LiveAnswers) -> list[SourceGap]:
        """Map, check and keep what the sources gave, in ``unit``; the gaps: those the
        sources declared and the records their mapping refused (never sent)."""
        gaps: list[SourceGap] = []
        for asked in answers.asked:
            spec, answer = asked.spec, asked.answer
            gaps.extend(answer.gaps)
            mapping = self.sources.library.get(spec.mapping_ref)
            records = (
                SourceRecord(
                    str(r.get("resourceType")),
                    f"{r.get('resourceType')}/{r.get('id')}",
                    r,
                    Location(f"{spec.id}:{r.get('resourceType')}/{r.get('id')}"[:200]),
                )
                for r in answer.records
            )
            refused: set[str] = set()
            given: set[str] = set()
            run = MappingRun(
                mapping,
                spec.id,
                spec.namespace,
                # One Provenance per member and source, replaced by each answer, not one
                # more on every request.
                file_digest="live",
                recorded=unit.now,
                compartment_of=lambda _: answers.member,
                member=answers.member,
            )
            for batch in map_batches(records, run, self.intake):
                refused.update(p.key.split("/", 1)[0] for p in batch.problems if p.key)
                if batch.held:
                    self.intake.hold(unit, spec.id, mapping, batch.held)
                    refused.update(h.resource.get("resourceType", "unknown") for h in batch.held)
                if batch.resources:
                    given.update(f"{r['resourceType']}/{r['id']}" for r, _ in batch.resources)
                    self.writer.write(
                        unit, batch.resources, source=f"source:{spec.id}", at=unit.now
                    )
            self._prune(unit, asked, answers.member, given, refused)
            if refused:
                gaps.append(
                    SourceGap(
                        spec.id,
                        tuple(sorted(refused)),
                        "source-error",
                        f"source '{spec.id}' gave records its mapping or their profile refused; "
                        "they were held back",
                        retry_may_help=False,
                    )
                )
        return gaps

    def _prune(
        self,
        unit: UnitOfWork,
        asked: AskedSource,
        member: MemberId,
        given: set[str],
        refused: set[str],
    ) -> None:
        """What the source no longer gives leaves what we keep of it: for each type it
        answered whole (no gap, none of its records held back, not only what changed
        since), the member's records of that type kept from it before and not given now.
        A type with a gap keeps what it had: a missing answer withdraws nothing."""
        if asked.query.since is not None:
            return
        asked_types = asked.query.types or frozenset(asked.spec.types)
        lacking = {t for gap in asked.answer.gaps for t in gap.types} | refused
        whole = frozenset(t for t in asked_types if t not in lacking and t != "Patient")
        if whole:
            self.writer.prune(
                unit, source=f"source:{asked.spec.id}", member=member, types=whole, keep=given
            )

    def sync_roster(self, unit: UnitOfWork, source_id: str) -> RosterReport:
        """Read a live source's members (its Bulk Data export, or a search), map their
        Patients and keep them with the link to their id there, indexed for matching,
        in ``unit``."""
        spec = self.sources.get(source_id)
        if not isinstance(spec, LiveSourceSpec):
            raise InvalidInput(f"source '{source_id}' is replicated: it has no roster to read")
        adapter = self.adapters.get(source_id)
        if adapter is None:
            raise InvalidInput(f"source '{source_id}' has no adapter configured")
        mapping = self.sources.library.get(spec.mapping_ref)
        report = RosterReport(source_id)
        links: list[tuple[str, str]] = []
        try:
            patients = list(_patients(adapter.roster()))
        except PartnerError as exc:
            raise InvalidInput(
                f"source '{source_id}': its roster could not be read: {exc.text}"
            ) from exc
        held: list[Held] = []
        kept: list[tuple[Resource, str | None]] = []
        for patient in patients:
            native_id = str(patient.get("id"))
            record = SourceRecord(
                "Patient", f"Patient/{native_id}", patient, Location(f"{source_id}:roster")
            )
            run = MappingRun(
                mapping,
                spec.id,
                spec.namespace,
                file_digest="roster",
                recorded=unit.now,
                compartment_of=lambda r: r.get("id")
                if r.get("resourceType") == "Patient"
                else None,
            )
            for batch in map_batches([record], run, self.intake):
                report.problems += len(batch.problems)
                report.held += len(batch.held)
                held.extend(batch.held)
                ours = [r for r, _ in batch.resources if r["resourceType"] == "Patient"]
                if ours:
                    kept.extend(batch.resources)
                    links.append((native_id, ours[0]["id"]))
        # The quarantine and the links first, the resources after: the SQL unit runs
        # its plain statements before its bulk writes.
        if held:
            self.intake.hold(unit, spec.id, mapping, held)
        self.links.link(unit, spec.id, links)
        if kept:
            self.writer.write(unit, kept, source=f"source:{spec.id}", at=unit.now)
        self.intake.index_members(unit, [member for _, member in links])
        report.members = len(links)
        return report


def _patients(resources: Iterator[Resource]) -> Iterator[Resource]:
    for resource in resources:
        if (
            isinstance(resource, dict)
            and resource.get("resourceType") == "Patient"
            and resource.get("id")
        ):
            yield resource
