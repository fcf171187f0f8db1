"""The data keys that seal the PHI columns outside the FHIR store, and the key-encryption
key (KEK) that wraps them, kept as a file outside the database (ADR 0039).

``load_keyring`` reads the KEK and every data key at start-up: a missing or wrong KEK
stops start-up with DataKeyUnavailable, before anything is matched. The first start of a
database makes its KEK (``data.key`` in the data dir, 0600, unless ``data_key_file``
names one) and its first data key (``add_first_key``). The stores seal and open through
``DataKeyring``; it learns of a key another process's rotation made when a value names
it, and looks for a newer current key at most every ``refresh_seconds``, on a connection
of its own (a unit of work's thread may not take a second one from the stores' pool).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, insert, select, update
from sqlalchemy.pool import NullPool

from payerbridge.config import Settings
from payerbridge.errors import DataKeyUnavailable
from payerbridge.store.key_files import write_private_file
from payerbridge.store.sealing import (
    KEY_BYTES,
    NONCE_BYTES,
    SealedField,
    Sealer,
    kek_fingerprint,
    unwrap_key,
    wrap_key,
)
from payerbridge.store.tables import data_keys
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = [
    "DataKeyInfo",
    "DataKeyring",
    "NoncePool",
    "add_first_key",
    "has_data_keys",
    "kek_path",
    "load_keyring",
    "new_kek_file",
    "read_kek",
]

logger = logging.getLogger(__name__)

_REFRESH_SECONDS = 30.0


def kek_path(settings: Settings) -> Path:
    """Where the KEK is kept: the configured file, else ``data.key`` in the data dir."""
    return settings.data_key_file or settings.data_dir / "data.key"


def new_kek_file(path: Path) -> bool:
    """Create a KEK file at ``path`` (0600) unless one is there; True when made."""
    return write_private_file(path, secrets.token_hex(KEY_BYTES).encode() + b"\n")


def read_kek(path: Path) -> bytes:
    """The KEK kept in ``path`` (64 hex digits); DataKeyUnavailable when it cannot be."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise DataKeyUnavailable(
            f"the key-encryption key file {path} is missing (PAYERBRIDGE_DATA_KEY_FILE): "
            "the data keys in the database are wrapped under it, and nothing sealed can be "
            "read without it"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataKeyUnavailable(
            f"the key-encryption key file {path} cannot be read ({exc.__class__.__name__})"
        ) from exc
    try:
        kek = bytes.fromhex(text)
    except ValueError:
        kek = b""
    if len(kek) != KEY_BYTES:
        raise DataKeyUnavailable(
            f"the key-encryption key file {path} does not hold a {KEY_BYTES * 8}-bit key "
            f"as {KEY_BYTES * 2} hex digits"
        )
    return kek


class NoncePool:
    """Random nonces drawn from the OS a few thousand at a time: one ``os.urandom`` call
    cost more than the AES-GCM seal of a resource (ADR 0044). Each nonce is still 96 random
    bits, never handed out twice; safe to share between threads."""

    def __init__(self, batch: int = 4096) -> None:
        self._batch = batch
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()

    def __call__(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._pool):
                self._pool, self._at = secrets.token_bytes(size * self._batch), 0
            start = self._at
            self._at = start + size
            return self._pool[start : self._at]


@dataclass(frozen=True)
class DataKeyInfo:
    """A data key as listed: never its bytes."""

    id: str
    kek_fingerprint: str
    created_at: datetime
    retired_at: datetime | None
    sealed_all_at: datetime | None


class DataKeyring:
    """Seals and opens the values of sealed columns under the database's data keys."""

    def __init__(
        self,
        engine: Engine,
        kek: bytes,
        keys: dict[str, bytes],
        current: str,
        *,
        refresh_seconds: float = _REFRESH_SECONDS,
    ) -> None:
        # Its own connections, opened rarely (a key fetched, the current key looked up).
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._kek = kek
        self._refresh_seconds = refresh_seconds
        self._next_refresh = time.monotonic() + refresh_seconds
        self._sealer = Sealer(keys, current, nonces=NoncePool(), fetch=self._fetch)

    @property
    def kek_fingerprint(self) -> str:
        return kek_fingerprint(self._kek)

    @property
    def current(self) -> str:
        return self._sealer.current

    def close(self) -> None:
        self._engine.dispose()

    def seal(self, plaintext: bytes | str, *, field: SealedField, row_key: str) -> str:
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        return self._sealer.seal(plaintext, field=field, row_key=row_key)

    def seal_bytes(self, plaintext: bytes | str, *, field: SealedField, row_key: str) -> bytes:
        """``seal`` for a binary field (``SealedField.binary``): bytes, no base64."""
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        return self._sealer.seal_bytes(plaintext, field=field, row_key=row_key)

    def open(self, stored: str | bytes | memoryview, *, field: SealedField, row_key: str) -> bytes:
        return self._sealer.open(stored, field=field, row_key=row_key)

    def refresh(self) -> None:
        """Seal under the newest key not retired from now (a rotation elsewhere made it)."""
        self._next_refresh = time.monotonic() + self._refresh_seconds
        try:
            with self._engine.connect() as connection:
                newest = _current_id(connection)
        except Exception:  # noqa: BLE001 - the key in use stays valid; tried again later
            logger.warning("the current data key could not be looked up; sealing goes on")
            return
        if newest is not None and newest != self._sealer.current:
            self._sealer.use(newest)

    def _fetch(self, key_id: str) -> bytes | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(data_keys).where(data_keys.c.id == key_id)).first()
        if row is None:
            return None
        _check_fingerprint(row.kek_fingerprint, self._kek, key_id)
        return unwrap_key(self._kek, key_id, bytes(row.wrapped_key))

    # -- the keys' life: made, retired, rewrapped (rotation, ``security.data_rotation``) --

    def data_keys(self) -> list[DataKeyInfo]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(data_keys).order_by(data_keys.c.created_at, data_keys.c.id)
            ).all()
        return [
            DataKeyInfo(r.id, r.kek_fingerprint, r.created_at, r.retired_at, r.sealed_all_at)
            for r in rows
        ]

    def make_key(self, unit: UnitOfWork) -> str:
        """A new data key, current from now, in ``unit``; every other key is retired."""
        connection = sql_unit(unit).connection
        key_id = _insert_key(connection, self._kek, at=unit.now)
        connection.execute(
            update(data_keys)
            .where(data_keys.c.id != key_id, data_keys.c.retired_at.is_(None))
            .values(retired_at=unit.now)
        )
        return key_id

    def use(self, key_id: str) -> None:
        """Seal under ``key_id`` from now (once the unit that made it has committed)."""
        self._sealer.use(key_id)

    def mark_sealed_all(self, unit: UnitOfWork, key_id: str) -> None:
        sql_unit(unit).connection.execute(
            update(data_keys).where(data_keys.c.id == key_id).values(sealed_all_at=unit.now)
        )

    def rewrap(self, unit: UnitOfWork, new_kek: bytes) -> list[str]:
        """Every data key wrapped again under ``new_kek``, in ``unit``: their ids."""
        connection = sql_unit(unit).connection
        rows = connection.execute(select(data_keys).with_for_update()).all()
        fingerprint = kek_fingerprint(new_kek)
        for row in rows:
            _check_fingerprint(row.kek_fingerprint, self._kek, row.id)
            key = unwrap_key(self._kek, row.id, bytes(row.wrapped_key))
            wrapped = wrap_key(new_kek, row.id, key, nonce=secrets.token_bytes(NONCE_BYTES))
            connection.execute(
                update(data_keys)
                .where(data_keys.c.id == row.id)
                .values(wrapped_key=wrapped, kek_fingerprint=fingerprint)
            )
        return [row.id for row in rows]


def _current_id(connection: Connection) -> str | None:
    return connection.execute(
        select(data_keys.c.id)
        .where(data_keys.c.retired_at.is_(None))
        .order_by(data_keys.c.created_at.desc(), data_keys.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _check_fingerprint(stored: str, kek: bytes, key_id: str) -> None:
    if stored != kek_fingerprint(kek):
        raise DataKeyUnavailable(
            f"data key {key_id} is wrapped under the key-encryption key of fingerprint "
            f"{stored}, not under the one read (fingerprint {kek_fingerprint(kek)}): the "
            "key-encryption key file (PAYERBRIDGE_DATA_KEY_FILE, else data.key in the data "
            "dir) is the wrong file"
        )


def _insert_key(connection: Connection, kek: bytes, *, at: datetime) -> str:
    key_id = secrets.token_hex(8)
    key = secrets.token_bytes(KEY_BYTES)
    connection.execute(
        insert(data_keys).values(
            id=key_id,
            wrapped_key=wrap_key(kek, key_id, key, nonce=secrets.token_bytes(NONCE_BYTES)),
            kek_fingerprint=kek_fingerprint(kek),
            created_at=at,
            retired_at=None,
            sealed_all_at=None,
        )
    )
    return key_id


def add_first_key(unit: UnitOfWork, settings: Settings) -> str:
    """The first data key of a database that has none, in ``unit``, wrapped under the
    KEK (made now, unless ``data_key_file`` names one: that file must exist)."""
    path = kek_path(settings)
    if settings.data_key_file is None:
        new_kek_file(path)
    return _insert_key(sql_unit(unit).connection, read_kek(path), at=unit.now)


def has_data_keys(engine: Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(data_keys.c.id).limit(1)).first() is not None


def load_keyring(engine: Engine, settings: Settings) -> DataKeyring:
    """The database's data keys, unwrapped under the KEK. DataKeyUnavailable, before
    anything is read, when the KEK file is missing or is not the one the keys were
    wrapped under; a KEK is never made here (the keys would be lost under a new one)."""
    with engine.connect() as connection:
        rows = connection.execute(select(data_keys)).all()
    if not rows:
        raise DataKeyUnavailable("the database holds no data key (add_first_key makes one)")
    kek = read_kek(kek_path(settings))
    keys = {}
    for row in rows:
        _check_fingerprint(row.kek_fingerprint, kek, row.id)
        keys[row.id] = unwrap_key(kek, row.id, bytes(row.wrapped_key))
    # The current key is read from the same rows: looked up by a second statement, it could
    # be one another process committed in between (two processes starting on an empty
    # database each add a first key), not among these. Every key retired (a rotation's
    # unit lost): the newest seals.
    live = [r for r in rows if r.retired_at is None] or rows
    current = max(live, key=lambda r: (r.created_at, r.id)).id
    return DataKeyring(engine, kek, keys, current)
