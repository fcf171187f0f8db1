"""Indexing in the room (``index_members``, ``reindex_all``) against an in-memory index:
the store reads members back and writes what the room decides, chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from payerbridge.identity.indexing import index_members, reindex_all
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.model import IndexChanges, IndexSource, record_from_dict
from payerbridge.transactions import UnitOfWork
from tests.builders import a_coverage, a_patient

AT = datetime(2026, 3, 1, tzinfo=UTC)
SECRET = b"test-identity-secret-of-32-bytes!"


class _Index:
    """The ``MemberIndexing`` port over dicts: Patients and Coverages as stored JSON."""

    blocking_secret = SECRET
    index_workers = 1

    def __init__(self, batch: int = 2) -> None:
        self.index_batch = batch
        self.patients_by_id: dict[str, str] = {}
        self.coverages: dict[str, list[str]] = {}
        self.received: set[str] = set()  # copies from other payers: not our members
        self.records: dict[str, tuple[str, str]] = {}  # member -> record, keys (JSON)
        self.keys: set[tuple[str, str]] = set()
        self.writes: list[IndexChanges] = []

    def add(self, patient: dict[str, Any], *coverages: dict[str, Any]) -> None:
        self.patients_by_id[patient["id"]] = orjson.dumps(patient).decode()
        self.coverages[patient["id"]] = [orjson.dumps(c).decode() for c in coverages]

    def stored_entries(
        self, unit: UnitOfWork, member_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        return {m: self.records[m] for m in member_ids if m in self.records}

    def index_source(self, unit: UnitOfWork, member_ids: Sequence[str]) -> IndexSource:
        ours = [m for m in member_ids if m in self.patients_by_id and m not in self.received]
        return IndexSource(
            {m: self.patients_by_id[m] for m in ours},
            {m: self.coverages[m] for m in ours if self.coverages.get(m)},
        )

    def patients(self, unit: UnitOfWork, member_ids: Sequence[str]) -> dict[str, str]:
        return {m: self.patients_by_id[m] for m in member_ids if m in self.patients_by_id}

    def write_entries(self, unit: UnitOfWork, changes: IndexChanges, *, at: datetime) -> None:
        self.writes.append(changes)
        for member in changes.replaced:
            del self.records[member]
        self.keys -= set(changes.removed)
        for entry in changes.write:
            self.records[entry.member_id] = (entry.record, entry.keys)

    def add_keys(
        self, unit: UnitOfWork, *, listed: Sequence[str], added: Sequence[tuple[str, str]]
    ) -> None:
        for member in listed:
            self.keys |= {(k, member) for k in orjson.loads(self.records[member][1])}
        self.keys |= set(added)

    def clear_index(self, unit: UnitOfWork) -> list[str]:
        self.records.clear()
        self.keys.clear()
        return sorted(set(self.patients_by_id) - self.received)

    def listed(self) -> set[tuple[str, str]]:
        """The keys the records list: what the key table must hold."""
        return {(k, m) for m, (_, keys) in self.records.items() for k in orjson.loads(keys)}


UNIT: Any = None  # the in-memory index writes without a transaction


def test_members_are_indexed_chunk_by_chunk_with_the_keys_on_their_records() -> None:
    index = _Index(batch=2)
    for n in range(5):
        index.add(a_patient(f"p{n}", family=f"Family{n}", member_id=f"M{n}"))
    sizes: list[int] = []
    assert (
        index_members(index, UNIT, ["p0", "p1", "p2", "p3", "p4"], at=AT, progress=sizes.append)
        == 5
    )
    assert sizes == [2, 2, 1]
    assert index.keys == index.listed() and index.keys
    record = record_from_dict(orjson.loads(index.records["p3"][0]))
    assert {k for k, m in index.keys if m == "p3"} == blocking_keys(record, secret=SECRET)


def test_a_member_indexed_again_loses_and_gains_only_the_keys_that_changed() -> None:
    index = _Index()
    index.add(a_patient("p1", family="Okafor", member_id="M1"))
    index_members(index, UNIT, ["p1"], at=AT)
    index.add(a_patient("p1", family="Adeyemi", member_id="M1"))
    index_members(index, UNIT, ["p1"], at=AT)
    changes = index.writes[-1]
    assert changes.replaced == ["p1"] and changes.fresh == []
    assert changes.removed and changes.added
    assert index.keys == index.listed()


def _with_ssn(patient: dict[str, Any], ssn: str) -> dict[str, Any]:
    ssn_identifier = {"system": "http://hl7.org/fhir/sid/us-ssn", "value": ssn}
    return {**patient, "identifier": [*patient.get("identifier", []), ssn_identifier]}


def test_a_dependent_carries_the_subscribers_ssn_read_from_outside_the_chunk() -> None:
    index = _Index(batch=1)
    index.add(_with_ssn(a_patient("sub", given="Bola", member_id="M9"), "123-45-6780"))
    card = {**a_coverage("c1", patient="kid", member_id="M10", subscriber_id="S9")}
    card["subscriber"] = {"reference": "Patient/sub"}
    kid = _with_ssn(a_patient("kid", given="Tolu", member_id="M10"), "123456780")
    index.add(kid, card)
    index_members(index, UNIT, ["kid"], at=AT)  # the subscriber is not in the chunk
    record = record_from_dict(orjson.loads(index.records["kid"][0]))
    assert record.ssn == "123456780" and record.ssn_carried
    assert set(index.records) == {"kid"}


def test_reindexing_empties_the_index_and_indexes_our_own_members_only() -> None:
    index = _Index()
    index.add(a_patient("p1", member_id="M1"))
    index.add(a_patient("copy", member_id="X1"))
    index.received.add("copy")
    index.records["gone"] = ("{}", "[]")
    assert reindex_all(index, UNIT, at=AT) == 1
    assert set(index.records) == {"p1"}
    assert index.keys == index.listed()
