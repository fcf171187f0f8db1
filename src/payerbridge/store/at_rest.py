"""Where the data keys meet the database (ADR 0044): each engine the stores use carries
the keyring that seals its member data and the key of its search index's blind keys.

Member data is read and written on many paths, a good part of them raw DB-API fast paths
(the importer, a received Bundle's store, a bulk job's lines, ``$everything``'s pages)
reached from a connection or a unit of work. So the keyring travels with the engine (its
pool: the SQLite reader has its own, PostgreSQL's reader shares the writer's) instead of
through a dozen constructors: ``attach`` at start-up, ``at_rest`` wherever a sealed value
is read or written. An engine nothing was attached to refuses (fail closed): a value is
never written in the clear because a path was not wired.
"""

from __future__ import annotations

import hmac
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from payerbridge.errors import DataKeyUnavailable
from payerbridge.store.sealing import SealedField

if TYPE_CHECKING:  # the tables' module is loaded first: data_keys imports it
    from payerbridge.store.data_keys import DataKeyring

__all__ = [
    "AtRest",
    "at_rest",
    "attach",
    "token_index_key",
]


def token_index_key(secret: bytes) -> bytes:
    """The key of the search index's blind keys (``fhir_tokens.value_key``), derived from
    the identity index's secret as the links' is: a new secret needs the index keyed anew."""
    return hmac.digest(secret, b"payerbridge/fhir_tokens.value_key/v1", "sha256")


class AtRest:
    """The keyring and the search index's key of one database."""

    def __init__(self, keyring: DataKeyring, token_key: bytes) -> None:
        self.keyring = keyring
        self._token_key = token_key

    def seal(self, plaintext: bytes | str, field: SealedField, row_key: str) -> str:
        return self.keyring.seal(plaintext, field=field, row_key=row_key)

    def seal_bytes(self, plaintext: bytes | str, field: SealedField, row_key: str) -> bytes:
        """``seal`` for a binary field (the hot columns: no base64)."""
        return self.keyring.seal_bytes(plaintext, field=field, row_key=row_key)

    def open(self, stored: str | bytes | memoryview, field: SealedField, row_key: str) -> bytes:
        return self.keyring.open(stored, field=field, row_key=row_key)

    def token_key(self, value: str) -> str:
        """The blind key of a searched value: equal values, equal keys; never the value."""
        return hmac.digest(self._token_key, value.encode(), "sha256").hex()


_ATTACHED: weakref.WeakKeyDictionary[Any, AtRest] = weakref.WeakKeyDictionary()


def attach(engine: Engine, keys: AtRest) -> None:
    """Seal and open what is stored through ``engine`` with ``keys``."""
    _ATTACHED[engine.pool] = keys


def at_rest(bind: Engine | Connection | Any) -> AtRest:
    """The keys of the database ``bind`` (an engine, a connection or a unit of work
    whose engine is known) reaches; DataKeyUnavailable when none were attached."""
    engine = bind.engine if isinstance(bind, Connection) else getattr(bind, "engine", bind)
    keys = _ATTACHED.get(engine.pool)
    if keys is None:
        raise DataKeyUnavailable(
            "no data keys are attached to this database's engine: member data is neither "
            "written nor read without them (open it through payerbridge's stores)"
        )
    return keys
