"""Members' entries in the identity index, built from their stored FHIR JSON: each
member's standardised record (as JSON) and its keyed blocking keys.

Building them is CPU-bound pure Python, and an import of a whole population builds a
million. ``entries_in_order`` builds chunks on worker processes while the caller reads
the next chunk and writes the last one's entries. The workers are spawned, not forked:
the caller is inside its import's open transaction, and a forked child would inherit
that connection (and any thread holding SQLite's locks) with it.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import AsyncResult

import orjson

from payerbridge.identity.blocking import blocking_keys
from payerbridge.identity.model import record_to_dict
from payerbridge.identity.records import record_from_fhir, ssn_of, subscriber_ref

__all__ = [
    "IndexChanges",
    "IndexChunk",
    "IndexEntry",
    "entries_in_order",
    "index_changes",
    "index_entries",
]

Json = str | bytes


@dataclass(frozen=True)
class IndexChunk:
    """The stored JSON of some members: each Patient with its current Coverage (if any),
    and the Patients of subscribers who are not among them (for a carried SSN)."""

    members: Sequence[tuple[str, Json, Json | None]]  # member id, Patient, Coverage
    subscribers: Mapping[str, Json]  # member id -> Patient


@dataclass(frozen=True)
class IndexEntry:
    """A member's entry as the index stores it: JSON text, ready to write."""

    member_id: str
    record: str  # the standardised record
    keys: str  # its blocking keys, a sorted list


def index_entries(chunk: IndexChunk, *, secret: bytes) -> list[IndexEntry]:
    """The index entries of a chunk's members, in the chunk's order."""
    patients = {member_id: orjson.loads(patient) for member_id, patient, _ in chunk.members}
    ssns: dict[str, str | None] = {}

    def ssn_of_member(member_id: str) -> str | None:
        if member_id not in ssns:
            patient = patients.get(member_id)
            if patient is None and member_id in chunk.subscribers:
                patient = orjson.loads(chunk.subscribers[member_id])
            ssns[member_id] = ssn_of(patient) if patient is not None else None
        return ssns[member_id]

    entries = []
    for member_id, _, coverage_json in chunk.members:
        coverage = orjson.loads(coverage_json) if coverage_json is not None else None
        subscriber = subscriber_ref(coverage) if coverage else None
        record = record_from_fhir(
            patients[member_id],
            coverage,
            subscriber_ssn=ssn_of_member(subscriber.removeprefix("Patient/"))
            if subscriber
            else None,
        )
        entries.append(
            IndexEntry(
                member_id,
                orjson.dumps(record_to_dict(record)).decode(),
                orjson.dumps(sorted(blocking_keys(record, secret=secret))).decode(),
            )
        )
    return entries


@dataclass(frozen=True)
class IndexChanges:
    """What indexing a chunk of members changes in the index, against what it held.

    A member indexed for the first time is ``fresh``: its keys are all those listed on
    its record. A member indexed before whose entry is unchanged is left alone; one whose
    entry changed has its record ``replaced`` and only the keys it lost ``removed`` and
    those it gained ``added``; one whose Patient is gone is ``replaced`` by nothing and
    loses every key. Keys are (key, member id) pairs."""

    write: list[IndexEntry] = field(default_factory=list)  # records to write
    replaced: list[str] = field(default_factory=list)  # stored records to remove first
    fresh: list[str] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)


def index_changes(
    member_ids: Sequence[str],
    entries: Sequence[IndexEntry],
    stored: Mapping[str, tuple[str, str]],
) -> IndexChanges:
    """The changes that index ``entries`` (built for ``member_ids``), given the entries
    ``stored`` for those of them indexed before (member id -> record, keys as JSON).
    A member of ``member_ids`` with no entry (its Patient is gone) leaves the index."""
    changes = IndexChanges()
    built = set()
    for entry in entries:
        member = entry.member_id
        built.add(member)
        before = stored.get(member)
        if before is None:
            changes.write.append(entry)
            changes.fresh.append(member)
            continue
        record, keys = before
        if record == entry.record and keys == entry.keys:
            continue
        old, new = set(orjson.loads(keys)), set(orjson.loads(entry.keys))
        changes.write.append(entry)
        changes.replaced.append(member)
        changes.removed.extend((key, member) for key in sorted(old - new))
        changes.added.extend((key, member) for key in sorted(new - old))
    for member in member_ids:
        if member in stored and member not in built:
            changes.replaced.append(member)
            changes.removed.extend((key, member) for key in orjson.loads(stored[member][1]))
    return changes


# The secret of this worker process, set by the pool's initializer.
_worker_secret: list[bytes] = []


def _install(secret: bytes) -> None:
    _worker_secret[:] = [secret]


def _entries_of(chunk: IndexChunk) -> list[IndexEntry]:
    return index_entries(chunk, secret=_worker_secret[0])


def entries_in_order(
    chunks: Iterable[IndexChunk], *, secret: bytes, workers: int
) -> Iterator[list[IndexEntry]]:
    """Each chunk's entries, in order. ``chunks`` is read in the calling thread (it may
    read a database); with ``workers`` > 1 they are built on that many spawned processes,
    a few chunks ahead of the caller."""
    if workers <= 1:
        yield from map(partial(index_entries, secret=secret), chunks)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_install, initargs=(secret,)) as pool:
        building: deque[AsyncResult[list[IndexEntry]]] = deque()
        for chunk in chunks:
            building.append(pool.apply_async(_entries_of, (chunk,)))
            if len(building) > workers:
                yield building.popleft().get()
        while building:
            yield building.popleft().get()
