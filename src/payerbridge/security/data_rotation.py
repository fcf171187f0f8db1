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

from payerbridge.audit.model import AuditEvent
from payerbridge.security.ports import KeyRow, SealedData
from payerbridge.security.unit import DataKeysUnit

__all__ = [
    "KeyRow",
    "RewrapDataKeys",
    "RotateDataKeys",
    "RotationReport",
    "SealWhatIsLeft",
    "SealedData",
    "rewrap_data_keys",
    "rotate_data_keys",
    "seal_what_is_left",
]

DEFAULT_BATCH = 500


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
    uow: DataKeysUnit,
    *,
    batch: int,
    plaintext_in: Collection[str],
    progress: Callable[[str, int], None] | None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Every sealed column moved under the current key, a batch per ``with uow:``; a
    plaintext value is sealed in the columns ``plaintext_in`` and refused elsewhere."""
    data = uow.sealed
    read: dict[str, int] = {}
    moved: dict[str, int] = {}
    for column in data.columns:
        after: object = None
        read[column] = moved[column] = 0
        while True:
            with uow:
                after, seen, written = data.reseal_batch(
                    uow,
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


@dataclass(frozen=True)
class RotateDataKeys:
    """An operator (``actor``) rotates the data keys, ``batch`` values per transaction."""

    actor: str
    batch: int = DEFAULT_BATCH


@dataclass(frozen=True)
class RewrapDataKeys:
    """An operator (``actor``) wraps every data key under ``new_kek`` (``fingerprint``
    names it)."""

    new_kek: bytes = field(repr=False)  # a key: never in a log or a traceback
    fingerprint: str
    actor: str


@dataclass(frozen=True)
class SealWhatIsLeft:
    """At start-up (``actor``: payerbridge itself), ``batch`` values per transaction;
    ``progress`` told each batch's column and how many values it read."""

    actor: str
    batch: int = DEFAULT_BATCH
    progress: Callable[[str, int], None] | None = None


def rotate_data_keys(command: RotateDataKeys, uow: DataKeysUnit) -> RotationReport:
    """Make a new data key (retiring the others) and move every sealed value under it.
    A rotation cut short (its key has no ``sealed_all_at``) is resumed, not begun anew."""
    data, actor = uow.sealed, command.actor
    keys = data.data_keys()
    current = next((key for key in keys if key.id == data.current), None)
    with uow:
        pending = list(data.pending_columns(uow))
    plaintext_in = set(data.columns) if _is_legacy_possible(keys) else set(pending)
    resumed = current is not None and current.sealed_all_at is None and len(keys) > 1
    if resumed:
        assert current is not None
        key_id = current.id
        retired = tuple(key.id for key in keys if key.id != key_id)
    else:
        retired = tuple(key.id for key in keys if key.retired_at is None)
        with uow:
            key_id = data.make_key(uow)
            uow.record(
                _event(
                    "data-key.create",
                    key_id,
                    at=uow.now,
                    actor=actor,
                    detail={"retired": list(retired), "kek": data.kek_fingerprint},
                )
            )
        data.use(key_id)
    read, moved = _pass(uow, batch=command.batch, plaintext_in=plaintext_in, progress=None)
    with uow:
        data.mark_sealed_all(uow, key_id)
        data.mark_columns_sealed(uow, pending)
        uow.record(
            _event(
                "data-key.rotate",
                key_id,
                at=uow.now,
                actor=actor,
                detail={"resumed": resumed, "retired": list(retired), "moved": moved},
            )
        )
    return RotationReport(key_id, resumed, retired, read, moved)


def seal_what_is_left(command: SealWhatIsLeft, uow: DataKeysUnit) -> RotationReport | None:
    """At start-up, seal what was stored before sealing began, before anything reads it:
    every column until a pass has completed once, and the rows of a column sealed since
    (its blind index not yet filled) until they are. Audited when any were; None when
    there was nothing to do."""
    data = uow.sealed
    legacy = _is_legacy_possible(data.data_keys())
    key_id = data.current
    with uow:
        pending = list(data.pending_columns(uow))
        plaintext_in = set(data.columns) if legacy else set(pending)
        unindexed = [column for column in data.columns if data.has_unindexed_rows(uow, column)]
        stored = any(data.has_rows(uow, column) for column in plaintext_in)
        if not unindexed and not stored:
            if not legacy and not pending:
                return None
            if legacy:
                data.mark_sealed_all(uow, key_id)  # a new database: nothing to seal
            data.mark_columns_sealed(uow, pending)  # or nothing yet in them
            return RotationReport(key_id, False, ())
    read, moved = _pass(
        uow, batch=command.batch, plaintext_in=plaintext_in, progress=command.progress
    )
    with uow:
        if legacy:
            data.mark_sealed_all(uow, key_id)
        data.mark_columns_sealed(uow, pending)
        event = _event(
            "data.seal", key_id, at=uow.now, actor=command.actor, detail={"moved": moved}
        )
        uow.record(event)
    return RotationReport(key_id, False, (), read, moved)


def rewrap_data_keys(command: RewrapDataKeys, uow: DataKeysUnit) -> list[str]:
    """Wrap every data key again under a new key-encryption key, in one unit of work;
    the ids of the keys rewrapped."""
    data = uow.sealed
    with uow:
        rewrapped = data.rewrap(uow, command.new_kek)
        uow.record(
            _event(
                "data-key.rewrap",
                data.current,
                at=uow.now,
                actor=command.actor,
                detail={
                    "keys": rewrapped,
                    "from_kek": data.kek_fingerprint,
                    "to_kek": command.fingerprint,
                },
            )
        )
    return rewrapped
