"""Rotating the keys that seal the PHI columns (ADR 0039): a new data key, every sealed
value moved under it in batches, the old keys retired; the key-encryption key replaced;
and, at the first start after sealing began, what was stored before it sealed.

Each is audited (entity ``DataKey``): which keys, how many values moved per column,
never a value.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.transactions import Transactions, UnitOfWork

__all__ = [
    "KeyRow",
    "RotationReport",
    "SealedData",
    "rewrap_data_keys",
    "rotate_data_keys",
    "seal_what_is_left",
]

DEFAULT_BATCH = 500


class KeyRow(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def kek_fingerprint(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def sealed_all_at(self) -> datetime | None: ...

    @property
    def retired_at(self) -> datetime | None: ...


class SealedData(Protocol):
    """The data keys and the sealed columns (``store.sealed_columns.SqlSealedData``)."""

    @property
    def current(self) -> str: ...

    @property
    def columns(self) -> Sequence[str]: ...

    def data_keys(self) -> Sequence[KeyRow]: ...

    def make_key(self, unit: UnitOfWork) -> str: ...

    def use(self, key_id: str) -> None: ...

    def mark_sealed_all(self, unit: UnitOfWork, key_id: str) -> None: ...

    def has_rows(self, unit: UnitOfWork, column: str) -> bool: ...

    def has_unindexed_rows(self, unit: UnitOfWork, column: str) -> bool: ...

    def pending_columns(self, unit: UnitOfWork) -> Sequence[str]:
        """The columns no pass has sealed yet (ADR 0044): they may hold plaintext."""
        ...

    def mark_columns_sealed(self, unit: UnitOfWork, columns: Sequence[str]) -> None: ...

    def reseal_batch(
        self,
        unit: UnitOfWork,
        column: str,
        *,
        after: object,
        limit: int,
        plaintext_allowed: bool,
    ) -> tuple[object, int, int]: ...

    def rewrap(self, unit: UnitOfWork, new_kek: bytes) -> list[str]: ...

    @property
    def kek_fingerprint(self) -> str: ...


@dataclass(frozen=True)
class RotationReport:
    key_id: str
    resumed: bool
    retired: tuple[str, ...]
    read: dict[str, int] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)


def _event(
    action: str, key_id: str, *, at: datetime, actor: str, detail: dict[str, object]
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=actor,
        action=action,
        entity_type="DataKey",
        entity_id=key_id,
        outcome="success",
        detail=dict(detail),
    )


def _is_legacy_possible(keys: Sequence[KeyRow]) -> bool:
    """No pass has ever completed: values stored before sealing began may be left."""
    return all(key.sealed_all_at is None for key in keys)


def _pass(
    data: SealedData,
    transactions: Transactions,
    *,
    batch: int,
    plaintext_in: Collection[str],
    progress: Callable[[str, int], None] | None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Every sealed column moved under the current key, a batch per unit of work; a
    plaintext value is sealed in the columns ``plaintext_in`` and refused elsewhere."""
    read: dict[str, int] = {}
    moved: dict[str, int] = {}
    for column in data.columns:
        after: object = None
        read[column] = moved[column] = 0
        while True:
            with transactions.begin() as unit:
                after, seen, written = data.reseal_batch(
                    unit,
                    column,
                    after=after,
                    limit=batch,
                    plaintext_allowed=column in plaintext_in,
                )
            read[column] += seen
            moved[column] += written
            if progress is not None:
                progress(column, seen)
            if after is None:
                break
    return read, moved


def rotate_data_keys(
    data: SealedData,
    transactions: Transactions,
    *,
    actor: str,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Make a new data key (retiring the others) and move every sealed value under it.
    A rotation cut short (its key has no ``sealed_all_at``) is resumed, not begun anew."""
    keys = data.data_keys()
    current = next((key for key in keys if key.id == data.current), None)
    with transactions.begin() as unit:
        pending = list(data.pending_columns(unit))
    plaintext_in = set(data.columns) if _is_legacy_possible(keys) else set(pending)
    resumed = current is not None and current.sealed_all_at is None and len(keys) > 1
    if resumed:
        assert current is not None
        key_id = current.id
        retired = tuple(key.id for key in keys if key.id != key_id)
    else:
        retired = tuple(key.id for key in keys if key.retired_at is None)
        with transactions.begin() as unit:
            key_id = data.make_key(unit)
            unit.record(
                _event(
                    "data-key.create",
                    key_id,
                    at=unit.now,
                    actor=actor,
                    detail={"retired": list(retired), "kek": data.kek_fingerprint},
                )
            )
        data.use(key_id)
    read, moved = _pass(
        data, transactions, batch=batch, plaintext_in=plaintext_in, progress=progress
    )
    with transactions.begin() as unit:
        data.mark_sealed_all(unit, key_id)
        data.mark_columns_sealed(unit, pending)
        unit.record(
            _event(
                "data-key.rotate",
                key_id,
                at=unit.now,
                actor=actor,
                detail={"resumed": resumed, "retired": list(retired), "moved": moved},
            )
        )
    return RotationReport(key_id, resumed, retired, read, moved)


def seal_what_is_left(
    data: SealedData,
    transactions: Transactions,
    *,
    actor: str,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport | None:
    """At start-up, seal what was stored before sealing began, before anything reads it:
    every column until a pass has completed once, and the rows of a column sealed since
    (its blind index not yet filled) until they are. Audited when any were; None when
    there was nothing to do."""
    legacy = _is_legacy_possible(data.data_keys())
    key_id = data.current
    with transactions.begin() as unit:
        pending = list(data.pending_columns(unit))
        plaintext_in = set(data.columns) if legacy else set(pending)
        unindexed = [column for column in data.columns if data.has_unindexed_rows(unit, column)]
        stored = any(data.has_rows(unit, column) for column in plaintext_in)
        if not unindexed and not stored:
            if not legacy and not pending:
                return None
            if legacy:
                data.mark_sealed_all(unit, key_id)  # a new database: nothing to seal
            data.mark_columns_sealed(unit, pending)  # or nothing yet in them
            return RotationReport(key_id, False, ())
    read, moved = _pass(
        data, transactions, batch=batch, plaintext_in=plaintext_in, progress=progress
    )
    with transactions.begin() as unit:
        if legacy:
            data.mark_sealed_all(unit, key_id)
        data.mark_columns_sealed(unit, pending)
        unit.record(_event("data.seal", key_id, at=unit.now, actor=actor, detail={"moved": moved}))
    return RotationReport(key_id, False, (), read, moved)


def rewrap_data_keys(
    data: SealedData, transactions: Transactions, new_kek: bytes, *, fingerprint: str, actor: str
) -> list[str]:
    """Wrap every data key again under a new key-encryption key (``fingerprint`` names it),
    in one unit of work; the ids of the keys rewrapped."""
    with transactions.begin() as unit:
        rewrapped = data.rewrap(unit, new_kek)
        unit.record(
            _event(
                "data-key.rewrap",
                data.current,
                at=unit.now,
                actor=actor,
                detail={"keys": rewrapped, "from_kek": data.kek_fingerprint, "to_kek": fingerprint},
            )
        )
    return rewrapped
