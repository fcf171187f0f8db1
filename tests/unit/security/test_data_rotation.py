"""Rotating the data keys (ADR 0039) on a fake of the sealed columns: a new key, every
value moved under it a batch per unit, the old retired, audited without values; a cut
rotation resumed under its key; plaintext sealed only before sealing ever completed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pytest

from payerbridge.errors import DataKeyUnavailable
from payerbridge.security.data_rotation import (
    DEFAULT_BATCH,
    RotateDataKeys,
    RotationReport,
    SealWhatIsLeft,
    rotate_data_keys,
    seal_what_is_left,
)
from payerbridge.security.unit import DataKeysUnit
from payerbridge.transactions import UnitOfWork
from tests.fakes import InMemoryAuditLog, InMemoryTransactions


@dataclass(frozen=True)
class Key:
    id: str
    retired_at: datetime | None = None
    sealed_all_at: datetime | None = None


class FakeSealedData:
    """Values as (key id, plaintext); a key id of None is a value stored in plaintext."""

    kek_fingerprint = "f00d"

    def __init__(self, values: dict[str, list[tuple[str | None, str]]], keys: list[Key]) -> None:
        self.values = values
        self.keys = keys
        self.current = next(k.id for k in reversed(keys) if k.retired_at is None)
        self.batches = 0
        self.sealed: set[str] = set()  # the columns a pass has sealed once

    @property
    def columns(self) -> list[str]:
        return list(self.values)

    def data_keys(self) -> list[Key]:
        return list(self.keys)

    def make_key(self, unit: UnitOfWork) -> str:
        self.keys = [replace(k, retired_at=k.retired_at or unit.now) for k in self.keys]
        self.keys.append(Key(f"k{len(self.keys) + 1}"))
        return self.keys[-1].id

    def use(self, key_id: str) -> None:
        self.current = key_id

    def mark_sealed_all(self, unit: UnitOfWork, key_id: str) -> None:
        self.keys = [replace(k, sealed_all_at=unit.now) if k.id == key_id else k for k in self.keys]

    def has_rows(self, unit: UnitOfWork, column: str) -> bool:
        return bool(self.values[column])

    def pending_columns(self, unit: UnitOfWork) -> list[str]:
        return [column for column in self.values if column not in self.sealed]

    def mark_columns_sealed(self, unit: UnitOfWork, columns: Sequence[str]) -> None:
        self.sealed.update(columns)

    def has_unindexed_rows(self, unit: UnitOfWork, column: str) -> bool:
        return False

    def reseal_batch(
        self,
        unit: UnitOfWork,
        column: str,
        *,
        after: str | None,
        limit: int,
        plaintext_allowed: bool,
    ) -> tuple[str | None, int, int]:
        self.batches += 1
        start = 0 if after is None else int(after) + 1
        rows = self.values[column][start : start + limit]
        moved = 0
        for n, (key_id, text) in enumerate(rows, start=start):
            if key_id == self.current:
                continue
            if key_id is None and not plaintext_allowed:
                raise DataKeyUnavailable(f"{column} holds a plaintext value")
            self.values[column][n] = (self.current, text)
            moved += 1
        last = str(start + len(rows) - 1) if len(rows) == limit else None
        return last, len(rows), moved

    def rewrap(self, unit: UnitOfWork, new_kek: bytes) -> list[str]:
        return [k.id for k in self.keys]


def _sealed(
    values: dict[str, list[tuple[str | None, str]]], keys: list[Key]
) -> tuple[FakeSealedData, InMemoryTransactions, InMemoryAuditLog]:
    audit = InMemoryAuditLog()
    data = FakeSealedData(values, keys)
    return data, InMemoryTransactions(audit, data), audit


def _rotate(
    data: FakeSealedData, transactions: InMemoryTransactions, batch: int = DEFAULT_BATCH
) -> RotationReport:
    """``rotate_data_keys`` as the CLI runs it, on a unit of the fakes."""
    uow = DataKeysUnit(transactions, data, Path("data.key"))
    return rotate_data_keys(RotateDataKeys("cli:ops", batch), uow)


def _seal(data: FakeSealedData, transactions: InMemoryTransactions) -> RotationReport | None:
    """``seal_what_is_left`` as a start runs it, on a unit of the fakes."""
    uow = DataKeysUnit(transactions, data, Path("data.key"))
    return seal_what_is_left(SealWhatIsLeft("payerbridge"), uow)


def test_a_rotation_moves_every_value_under_a_new_key_in_batches_and_retires_the_old() -> None:
    data, transactions, audit = _sealed(
        {"t.a": [("k1", "x")] * 5, "t.b": [("k1", "y")] * 2},
        [Key("k1", sealed_all_at=datetime(2026, 1, 1).astimezone())],
    )

    report = _rotate(data, transactions, batch=2)

    assert report.key_id == "k2" and report.retired == ("k1",) and not report.resumed
    assert report.moved == {"t.a": 5, "t.b": 2}
    assert {key for column in data.values.values() for key, _ in column} == {"k2"}
    assert data.batches == 3 + 2  # 2+2+1, then 2 and an empty read
    assert data.keys[0].retired_at is not None and data.keys[1].sealed_all_at is not None
    assert [(e.action, e.entity_id, e.actor) for e in audit.events] == [
        ("data-key.create", "k2", "cli:ops"),
        ("data-key.rotate", "k2", "cli:ops"),
    ]
    assert "x" not in repr([e.detail for e in audit.events])


def test_a_rotation_cut_short_resumes_under_its_own_key() -> None:
    data, transactions, _ = _sealed(
        {"t.a": [("k2", "x"), ("k1", "x")]},
        [
            Key(
                "k1",
                retired_at=datetime(2026, 1, 2).astimezone(),
                sealed_all_at=datetime(2026, 1, 1).astimezone(),
            ),
            Key("k2"),
        ],
    )

    report = _rotate(data, transactions)

    assert report.resumed and report.key_id == "k2" and report.moved == {"t.a": 1}
    assert [k.id for k in data.keys] == ["k1", "k2"]  # no third key


def test_plaintext_is_sealed_at_start_only_until_a_pass_has_completed() -> None:
    data, transactions, audit = _sealed({"t.a": [(None, "x"), ("k1", "y")]}, [Key("k1")])

    report = _seal(data, transactions)

    assert report is not None and report.moved == {"t.a": 1}
    assert [e.action for e in audit.events] == ["data.seal"]
    assert _seal(data, transactions) is None  # done once
    data.values["t.a"].append((None, "z"))  # written outside payerbridge afterwards
    with pytest.raises(DataKeyUnavailable, match="plaintext"):
        _rotate(data, transactions)


def test_a_new_database_is_marked_sealed_without_an_audit_event() -> None:
    data, transactions, audit = _sealed({"t.a": []}, [Key("k1")])

    assert _seal(data, transactions) is not None
    assert data.keys[0].sealed_all_at is not None and audit.events == []


def test_a_column_sealed_from_a_later_release_is_sealed_at_start_and_the_others_still_refuse() -> (
    None
):
    # Sealing completed once (ADR 0039) for "t.a"; "t.b" is sealed from a later release
    # on (ADR 0044): its values stored before are plaintext, and a start seals them.
    data, transactions, audit = _sealed(
        {"t.a": [("k1", "x")], "t.b": [(None, "y"), (None, "z")]},
        [Key("k1", sealed_all_at=datetime(2026, 1, 1))],
    )
    data.sealed = {"t.a"}

    report = _seal(data, transactions)

    assert report is not None and report.moved == {"t.a": 0, "t.b": 2}
    assert data.values["t.b"] == [("k1", "y"), ("k1", "z")] and data.sealed == {"t.a", "t.b"}
    assert [e.action for e in audit.events] == ["data.seal"]
    assert _seal(data, transactions) is None  # done once
    # From then on a plaintext value there is refused, as in the columns sealed before.
    data.values["t.b"].append((None, "w"))
    with pytest.raises(DataKeyUnavailable, match="plaintext"):
        _rotate(data, transactions)


def test_a_later_column_sealed_by_a_rotation_before_any_start_is_marked_sealed() -> None:
    data, transactions, _ = _sealed(
        {"t.a": [("k1", "x")], "t.b": [(None, "y")]},
        [Key("k1", sealed_all_at=datetime(2026, 1, 1))],
    )
    data.sealed = {"t.a"}

    report = _rotate(data, transactions)

    assert report.moved == {"t.a": 1, "t.b": 1} and data.sealed == {"t.a", "t.b"}
