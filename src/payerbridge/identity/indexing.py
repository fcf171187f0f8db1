"""Members' entries in the identity index, built from their stored FHIR JSON: each
member's standardised record (as JSON) and its keyed blocking keys; and indexing itself
(``index_members``, ``reindex_all``): the store reads members back and writes what the
room decides changes (``store.identity``).

Building them is CPU-bound pure Python, and an import of a whole population builds a
million. ``entries_in_order`` builds chunks on worker processes while the caller reads
the next chunk and writes the last one's entries. The workers are spawned, not forked:
the caller is inside its import's open transaction, and a forked child would inherit
that connection (and any thread holding SQLite's locks) with it.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from multiprocessing.pool import AsyncResult

import orjson

from payerbridge.identity.demographics.records import (
    current_coverage,
    record_from_fhir,
    ssn_of,
    subscriber_ref,
)
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.model import IndexChanges, IndexEntry, record_to_dict
from payerbridge.identity.ports import MemberIndexing
from payerbridge.transactions import UnitOfWork

__all__ = [
    "IndexChunk",
    "entries_in_order",
    "index_changes",
    "index_entries",
    "index_members",
    "reindex_all",
]

# Chunks from which indexing builds entries on a process pool.
_POOLED_CHUNKS = 4

Json = str | bytes


@dataclass(frozen=True)
class IndexChunk:
    """The stored JSON of some members: each Patient with its current Coverage (if any),
    and the Patients of subscribers who are not among them (for a carried SSN)."""

    members: Sequence[tuple[str, Json, Json | None]]  # member id, Patient, Coverage
    subscribers: Mapping[str, Json]  # member id -> Patient


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


def index_members(
    index: MemberIndexing,
    unit: UnitOfWork,
    member_ids: Iterable[str],
    *,
    at: datetime,
    progress: Callable[[int], None] | None = None,
) -> int:
    """(Re)index these Patients in ``unit`` (an import's, which wrote them); returns how
    many exist. ``progress`` receives the size of each chunk of ``member_ids`` once it is
    indexed.

    Members are read back ``index.index_batch`` at a time, in the order given: an import
    gives the order it wrote their rows in, so each chunk reads neighbouring rows, not
    rows strewn over the table. Their entries are built on ``index.index_workers``
    processes when there are several chunks. A member indexed before is written again
    only if its entry changed, and then only the keys it lost are deleted and those it
    gained added (``index_changes``): the key table has no index by member (ADR 0020)."""
    wanted = list(dict.fromkeys(member_ids))
    size = index.index_batch
    chunks = [wanted[s : s + size] for s in range(0, len(wanted), size)]
    # A process pool pays for itself only over several chunks.
    workers = index.index_workers if len(chunks) >= _POOLED_CHUNKS else 1
    stored: dict[str, tuple[str, str]] = {}  # filled as each chunk is read back

    def read(chunk: Sequence[str]) -> IndexChunk:
        stored.update(index.stored_entries(unit, chunk))
        return _chunk_of(index, unit, chunk)

    fresh: list[str] = []  # indexed for the first time: their keys go in at the end
    added: list[tuple[str, str]] = []  # keys gained by members indexed before
    count = 0
    built = entries_in_order(map(read, chunks), secret=index.blocking_secret, workers=workers)
    for chunk, entries in zip(chunks, built, strict=True):
        changes = index_changes(chunk, entries, stored)
        for member in chunk:
            stored.pop(member, None)
        index.write_entries(unit, changes, at=at)
        fresh.extend(changes.fresh)
        added.extend(changes.added)
        count += len(entries)
        if progress is not None:
            progress(len(chunk))
    index.add_keys(unit, listed=fresh, added=sorted(added))
    return count


def reindex_all(
    index: MemberIndexing,
    unit: UnitOfWork,
    *,
    at: datetime,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Rebuild the whole index from the member data in ``unit`` (after a secret or spec
    change); returns how many members are indexed."""
    return index_members(index, unit, index.clear_index(unit), at=at, progress=progress)


def _chunk_of(index: MemberIndexing, unit: UnitOfWork, member_ids: Sequence[str]) -> IndexChunk:
    """The Patients among ``member_ids``, each with its current Coverage, and the Patients
    of their subscribers who are not among them."""
    found = index.index_source(unit, member_ids)
    chosen: dict[str, str] = {}  # member -> its current Coverage, as stored
    subscribers: set[str] = set()
    for member, stored in found.coverages.items():
        coverages = [orjson.loads(text) for text in stored]
        current = current_coverage(coverages)
        chosen[member] = next(
            text for coverage, text in zip(coverages, stored, strict=True) if coverage is current
        )
        if (ref := subscriber_ref(current)) is not None:
            subscribers.add(ref.removeprefix("Patient/"))
    missing = sorted(subscribers - set(found.patients))
    outside = index.patients(unit, missing) if missing else {}
    return IndexChunk(
        [(member, patient, chosen.get(member)) for member, patient in found.patients.items()],
        outside,
    )
