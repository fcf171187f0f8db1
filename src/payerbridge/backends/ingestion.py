"""A replicated source's file turned into resources, record by record (pure).

Each record is mapped whole or not at all: a record the mapping refuses is a problem
naming where it is and why, and the others go on. Each resource produced is checked
against the profile it claims before it may be kept; one that fails is held for the
quarantine with the reason, never kept and never dropped without a word. Every batch
of records gets one Provenance per member, saying the data came from this source in
this format through this mapping version (PDex ``sourceFormat``).

A record the reader refused whole because a defect changes its meaning (ADR 0056) comes
with the record as read: it is held in the quarantine with its reasons. A warning (a
defect that does not change the meaning) is counted by kind on the file's report, and
the warnings of the records a member's resources came from are carried on that member's
Provenance (``ProvenanceOf``'s ``warnings``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from payerbridge.backends.mapping import Mapping, RecordNotMapped, source_uri
from payerbridge.backends.model import HeldIssue, RecordProblem, SourceId, SourceRecord, ToHold
from payerbridge.backends.quarantine import Quarantine, quarantine
from payerbridge.errors import MappingError
from payerbridge.timestamps import utc_iso
from payerbridge.transactions import UnitOfWork

__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "Batch",
    "ConflictIssue",
    "FileReport",
    "Held",
    "HoldResources",
    "IndexMembers",
    "Intake",
    "MadeFromSource",
    "MappingRun",
    "Resource",
    "conflict",
    "differing_fields",
    "ProfileCheck",
    "ProvenanceOf",
    "hold_in",
    "map_batches",
    "refuse_to_hold",
]

Resource = dict[str, Any]
# The profile check: what is wrong with a resource (empty when nothing), one text each.
ProfileCheck = Callable[[Resource], list[Any]]
MAX_REPORTED_PROBLEMS = 100
MAX_REPORTED_WARNINGS = 100
MAX_PROVENANCE_WARNINGS = 20  # the texts one Provenance carries (the rest are counted)


@dataclass(frozen=True)
class MadeFromSource:
    """What a source Provenance says: resources (``targets``) a mapping made from a
    source's records, recorded when; ``warnings``, the texts of what was read despite a
    defect of those records (no values)."""

    provenance_id: str
    targets: list[Resource]
    mapping: Mapping
    source_id: str
    recorded: datetime
    warnings: Sequence[str] = ()


# Builds the source Provenance of what a mapping made.
ProvenanceOf = Callable[[MadeFromSource], Resource]


@dataclass(frozen=True)
class Held:
    """A resource that failed the profile it claims, with why (ProfileIssue-like)."""

    resource: Resource
    issues: list[Any]
    record_key: str
    location: str


@dataclass
class Batch:
    """Up to ``size`` records' worth of output: what to keep (with the compartment each
    resource belongs to), what to hold, and what could not be mapped."""

    resources: list[tuple[Resource, str | None]] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)
    records: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    mapped: int = 0  # records that gave their resources
    quarantined: set[str] = field(default_factory=set)  # keys of records refused whole
    warnings: list[RecordProblem] = field(default_factory=list)
    # The warning texts of the records each member's resources came from.
    member_warnings: dict[str, dict[str, None]] = field(default_factory=dict)


@dataclass(frozen=True)
class MappingRun:
    """One run of a source's mapping over what the source gave: the mapping and the
    source (its id, the namespace our ids for its records are made in), the file or
    answer read (``file_digest`` seeds the Provenance ids), when, the compartment each
    resource goes to, and (a live source's answer) the member it was asked about."""

    mapping: Mapping
    source_id: str
    namespace: str
    file_digest: str
    recorded: datetime
    compartment_of: Callable[[Resource], str | None]
    member: str | None = None


def map_batches(
    records: Iterable[SourceRecord | RecordProblem],
    run: MappingRun,
    intake: Intake,
    *,
    size: int = 1000,
) -> Iterator[Batch]:
    """The records' output in batches of ``size`` records, each checked against its
    profiles (``intake.check``) and its members' resources given their Provenance, so
    that a file of any length is mapped in the same memory."""
    batch = Batch()
    number = 0
    stamp = utc_iso(run.recorded)
    context: Any = None  # what the records before left (mapping.py: context.jsonata)
    for item in records:
        if isinstance(item, RecordProblem):
            _note_problem(batch, item)
            continue
        batch.records += 1
        try:
            produced = run.mapping.apply(
                item.data,
                source_id=run.source_id,
                namespace=run.namespace,
                member=run.member,
                context=context,
            )
            context = run.mapping.carried(item.data, context, namespace=run.namespace)
        except RecordNotMapped as exc:
            batch.problems.append(RecordProblem(item.location, exc.text, exc.code, key=item.key))
            continue
        batch.mapped += 1
        texts = [str(w) for w in item.warnings]
        for resource in produced:
            # As it will be served: the profiles that require meta.lastUpdated see it.
            resource["meta"]["lastUpdated"] = stamp
            issues = intake.check(resource)
            if issues:
                batch.held.append(Held(resource, issues, item.key, str(item.location)))
                continue
            member = run.compartment_of(resource)
            batch.resources.append((resource, member))
            batch.counts[resource["resourceType"]] += 1
            if texts and member is not None:
                batch.member_warnings.setdefault(member, {}).update(dict.fromkeys(texts))
        if batch.records >= size:
            yield _with_provenance(batch, run, number, intake.provenance)
            number += 1
            batch = Batch()
    if batch.records or batch.problems or batch.warnings:
        yield _with_provenance(batch, run, number, intake.provenance)


def _note_problem(batch: Batch, problem: RecordProblem) -> None:
    """A reader's problem: a warning, or a refusal (of a record: held when the reader
    gave the record as read)."""
    if problem.is_warning:
        batch.warnings.append(problem)
        return
    batch.problems.append(problem)
    if problem.key is not None:
        batch.quarantined.add(problem.key)
    if problem.record is not None and problem.key is not None:
        body = {
            "resourceType": "X12Record",
            "key": problem.key,
            "location": problem.location.to_json(),
            "record": problem.record,
        }
        issue = RecordIssue("", str(problem.location), "x12-record", problem.text)
        batch.held.append(Held(body, [issue], problem.key, str(problem.location)))


@dataclass(frozen=True)
class RecordIssue:
    """Why the reader refused a record, shaped as a profile issue is, for the quarantine
    (``rule`` "x12-record", ``path`` the segment; ``text`` names no value)."""

    profile: str
    path: str
    rule: str
    text: str


def _with_provenance(batch: Batch, run: MappingRun, number: int, provenance: ProvenanceOf) -> Batch:
    by_member: dict[str, list[Resource]] = {}
    for resource, member in batch.resources:
        if member is not None:
            by_member.setdefault(member, []).append(resource)
    for member, given in by_member.items():
        # A record given again in the same batch (a reversal after its fill) is one target.
        targets = list({(r["resourceType"], r["id"]): r for r in given}.values())
        seed = "\x1f".join((source_uri(run.source_id), run.file_digest, str(number), member))
        provenance_id = hashlib.sha256(seed.encode()).hexdigest()[:32]
        warnings = list(batch.member_warnings.get(member, {}))[:MAX_PROVENANCE_WARNINGS]
        made = MadeFromSource(
            provenance_id, targets, run.mapping, run.source_id, run.recorded, warnings
        )
        batch.resources.append((provenance(made), member))
        batch.counts["Provenance"] += 1
    return batch


@dataclass
class FileReport:
    """What one file gave: counts by type, what was held for its profile, the records
    that could not be read or mapped (the first hundred, each with its line or segment),
    and, when mapped again, what changed."""

    source_id: str
    name: str
    sha256: str
    mapping: str
    file_id: str | None = None
    duplicate: bool = False
    records: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    held: int = 0
    problem_count: int = 0
    problems: list[RecordProblem] = field(default_factory=list)
    mapped: int = 0  # records that gave their resources
    # Records the reader refused whole, held in the quarantine, and records the mapping
    # refused (an unknown local code...): the reasons of both are among the problems.
    records_quarantined: int = 0
    records_not_mapped: int = 0
    warnings: Counter[str] = field(default_factory=Counter)  # by kind
    warning_examples: list[RecordProblem] = field(default_factory=list)  # the first 100
    changes: Counter[str] = field(default_factory=Counter)  # added, changed, unchanged, removed
    conflicts: int = 0  # resources another source gave differently: held, not overwritten
    # Mapped again without its body, which the purge or an erasure removed (ADR 0038):
    # not mapped, and what it gave is left as it was.
    body_gone: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source_id,
            "file": self.name,
            "sha256": self.sha256,
            "mapping": self.mapping,
            "duplicate": self.duplicate,
            "records": self.records,
            "records_mapped": self.mapped,
            "records_quarantined": self.records_quarantined,
            "records_not_mapped": self.records_not_mapped,
            "resources": dict(sorted(self.counts.items())),
            "quarantined": self.held,
            "problem_count": self.problem_count,
            "problems": [p.to_json() for p in self.problems],
            "warnings": dict(sorted(self.warnings.items())),
            "warning_examples": [w.to_json() for w in self.warning_examples],
            "changes": dict(sorted(self.changes.items())),
            "conflicts": self.conflicts,
            **({"body_gone": True} if self.body_gone else {}),
        }


@dataclass(frozen=True)
class ConflictIssue:
    """Why a resource was held as a conflict: shaped as a profile issue is, for the
    quarantine (``rule`` "conflict"; ``text`` names fields, never their values)."""

    profile: str
    path: str
    rule: str
    text: str


def differing_fields(before: Resource, after: Resource) -> list[str]:
    """The top-level elements (not meta) in which ``after``, another source's version of
    a resource, says something else than ``before``, or something more. What it leaves
    out is no disagreement: a roster without addresses does not contradict the 834."""
    keys = set(after) - {"meta"}
    return sorted(k for k in keys if before.get(k) != after[k])


def conflict(resource: Resource, other_source: str, fields: list[str]) -> Held:
    """``resource`` held because ``other_source`` already gave it with other ``fields``."""
    kind = resource.get("resourceType", "Resource")
    text = (
        f"{other_source} already gave this {kind} with other {', '.join(fields)}; that one is "
        "kept and this one held: correct the sources, or give one of them its own namespace"
    )
    issue = ConflictIssue("", f"{kind}.{fields[0]}", "conflict", text)
    return Held(resource, [issue], f"{kind}/{resource.get('id')}", "conflict")


# Holds what failed its profile, in the ingestion's unit (the quarantine).
HoldResources = Callable[[UnitOfWork, str, Mapping, Sequence[Held]], None]


# Indexes the members whose records were just kept, for matching, in the same unit.
IndexMembers = Callable[[UnitOfWork, Sequence[str]], object]


@dataclass(frozen=True)
class Intake:
    """What every source's mapped output passes through, replicated or live: the profile
    check, the quarantine for what fails it, the source Provenance it carries (with us
    as custodian), and the indexing of the members it gave for matching."""

    check: ProfileCheck
    hold: HoldResources
    provenance: ProvenanceOf
    index_members: IndexMembers


def hold_in(store: Quarantine) -> HoldResources:
    """What failed its profile, held in ``store`` with the mapping that made it, each
    hold audited (ids and the rules broken, no values)."""

    def hold(unit: UnitOfWork, source_id: str, mapping: Mapping, held: Sequence[Held]) -> None:
        quarantine(
            unit,
            store,
            [
                ToHold(
                    SourceId(source_id),
                    item.resource,
                    [HeldIssue.of(issue) for issue in item.issues],
                    mapping_id=mapping.ref.name,
                    mapping_version=mapping.ref.version,
                )
                for item in held
            ],
            actor=f"source:{source_id}",
        )

    return hold


def refuse_to_hold(
    unit: UnitOfWork, source_id: str, mapping: Mapping, held: Sequence[Held]
) -> None:
    """Where no quarantine is wired, what fails its profile stops the file: never kept,
    never dropped."""
    raise MappingError("resources failed their profile, and no quarantine is wired to hold them")
