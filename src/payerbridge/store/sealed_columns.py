"""The columns sealed under the data keys (ADR 0039), and the pass that moves their
values under the current key: after a rotation, and at the first start after the
upgrade that began sealing (the values stored before it, in plaintext).

A pass reads each table in its primary key's order, a batch at a time, and writes back
only the values not yet under the current key, each with a compare-and-set on the value
it read: a row changed meanwhile (its writer sealed it anew) is left as its writer left
it. Each batch is a unit of work of its own; a pass cut short is begun again from the
start, and what it already moved is read and left.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update

from payerbridge.errors import DataKeyUnavailable
from payerbridge.identity.graph import IdentityLink
from payerbridge.security.sealing import SealedField, is_sealed, key_id_of
from payerbridge.store.data_keys import DataKeyInfo, DataKeyring
from payerbridge.store.tables import (
    exchanges,
    identity_links,
    identity_member_records,
    identity_reviews,
    pull_schedules,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = [
    "EXCHANGE_REQUEST",
    "LINK_VALUE",
    "MEMBER_RECORD",
    "PULL_REQUEST",
    "REVIEW_REQUEST",
    "SEALED_COLUMNS",
    "SealedColumn",
    "SealedLinks",
    "SqlSealedData",
    "has_rows",
    "link_index_key",
    "reseal_batch",
]

# The standardised demographics matching compares, one per indexed member.
MEMBER_RECORD = SealedField(identity_member_records.name, "record")
# The request a review case holds, as matching read it.
REVIEW_REQUEST = SealedField(identity_reviews.name, "request_record")
# An exchange's submitted request: the member's demographics, cards and consent.
EXCHANGE_REQUEST = SealedField(exchanges.name, "request")
# An identifier others know our member by (their member and subscriber ids, our UMBs),
# found by ``value_key``, a keyed hash of it (a blind index).
LINK_VALUE = SealedField(identity_links.name, "value")
# The request a standing pull sends each time (issue 54, ADR 0040).
PULL_REQUEST = SealedField(pull_schedules.name, "request")


@dataclass(frozen=True)
class SealedColumn:
    """A sealed column with the table it is in, the primary key a pass reads it in the
    order of, the columns whose values (joined by ``|``) a value is sealed for, and the
    column of its blind index, if it is looked up by value."""

    field: SealedField
    table: Table
    order_by: str
    bound_to: tuple[str, ...]
    blind_index: str | None = None

    @property
    def name(self) -> str:
        return f"{self.field.table}.{self.field.column}"

    def row_key(self, row: Any) -> str:
        return "|".join(str(row._mapping[column]) for column in self.bound_to)


SEALED_COLUMNS = (
    SealedColumn(MEMBER_RECORD, identity_member_records, "member_id", ("member_id",)),
    SealedColumn(REVIEW_REQUEST, identity_reviews, "id", ("id",)),
    SealedColumn(EXCHANGE_REQUEST, exchanges, "id", ("id",)),
    SealedColumn(PULL_REQUEST, pull_schedules, "id", ("id",)),
    SealedColumn(LINK_VALUE, identity_links, "id", ("member_id", "kind", "system"), "value_key"),
)


def link_index_key(secret: bytes) -> bytes:
    """The key of the links' blind index, derived from the identity index's secret: a new
    secret needs ``identity reindex``, which keys the links anew too."""
    return hmac.digest(secret, b"payerbridge/identity_links.value_key/v1", "sha256")


def _blind_key(index_key: bytes, value: str) -> str:
    return hmac.digest(index_key, value.encode(), "sha256").hex()


class SealedLinks:
    """Identity links' values sealed for their member, kind and system, and looked up by
    their blind index."""

    def __init__(self, keyring: DataKeyring, index_key: bytes) -> None:
        self._keyring = keyring
        self._index_key = index_key

    def key_of(self, value: str) -> str:
        return _blind_key(self._index_key, value)

    def seal(self, link: IdentityLink) -> tuple[str, str]:
        """The link's value sealed, and its blind index."""
        row_key = f"{link.member_id}|{link.kind}|{link.system}"
        sealed = self._keyring.seal(link.value, field=LINK_VALUE, row_key=row_key)
        return sealed, self.key_of(link.value)

    def open(self, row: Any) -> str:
        """The value of a row of ``identity_links`` (member_id, kind, system, value)."""
        row_key = f"{row.member_id}|{row.kind}|{row.system}"
        return self._keyring.open(row.value, field=LINK_VALUE, row_key=row_key).decode()


def has_rows(unit: UnitOfWork, column: SealedColumn) -> bool:
    """Whether ``column`` holds any value (a database that had data before sealing)."""
    value = column.table.c[column.field.column]
    query = select(column.table.c[column.order_by]).where(value.is_not(None)).limit(1)
    return sql_unit(unit).connection.execute(query).first() is not None


def has_unindexed_rows(unit: UnitOfWork, column: SealedColumn) -> bool:
    """Whether ``column`` has rows stored before it was sealed (no blind index yet)."""
    if column.blind_index is None:
        return False
    blind = column.table.c[column.blind_index]
    query = select(column.table.c[column.order_by]).where(blind.is_(None)).limit(1)
    return sql_unit(unit).connection.execute(query).first() is not None


def reseal_batch(
    unit: UnitOfWork,
    keyring: DataKeyring,
    column: SealedColumn,
    *,
    after: Any,
    limit: int,
    plaintext_allowed: bool,
    index_key: bytes,
) -> tuple[Any, int, int]:
    """Move the next ``limit`` rows of ``column`` after the key ``after`` (of its
    ``order_by``) under the current data key, in ``unit``: (the last key read, or None at
    the end; how many rows were read; how many values were written). A value stored
    before sealing began is sealed as it is when ``plaintext_allowed``, or when its row
    has no blind index yet; otherwise it is refused."""
    table, field = column.table, column.field
    order, value = table.c[column.order_by], table.c[field.column]
    wanted = {order.name, value.name, *column.bound_to}
    if column.blind_index is not None:
        wanted.add(column.blind_index)
    query = select(*(table.c[name] for name in sorted(wanted))).order_by(order).limit(limit)
    if after is not None:
        query = query.where(order > after)
    connection = sql_unit(unit).connection
    rows = connection.execute(query).all()
    current = keyring.current
    moved = 0
    for row in rows:
        stored = row._mapping[value.name]
        if stored is None or key_id_of(stored) == current:
            continue
        row_key = column.row_key(row)
        changes: dict[str, str] = {}
        if is_sealed(stored):
            plaintext = keyring.open(stored, field=field, row_key=row_key)
        elif plaintext_allowed or _unindexed(column, row):
            plaintext = stored.encode()
            if column.blind_index is not None:
                changes[column.blind_index] = _blind_key(index_key, stored)
        else:
            raise DataKeyUnavailable(
                f"{column.name} holds a plaintext value though sealing is complete: it "
                "was written outside payerbridge, or by a version before sealing began"
            )
        changes[field.column] = keyring.seal(plaintext, field=field, row_key=row_key)
        written = connection.execute(
            update(table).where(order == row._mapping[order.name], value == stored).values(changes)
        )
        moved += int(written.rowcount or 0)
    last = rows[-1]._mapping[order.name] if len(rows) == limit else None
    return last, len(rows), moved


def _unindexed(column: SealedColumn, row: Any) -> bool:
    return column.blind_index is not None and row._mapping[column.blind_index] is None


class SqlSealedData:
    """The data keys and the sealed columns, for rotation (``security.data_rotation``)."""

    def __init__(self, keyring: DataKeyring, index_key: bytes) -> None:
        self._keyring = keyring
        self._index_key = index_key
        self._columns = {column.name: column for column in SEALED_COLUMNS}

    @property
    def current(self) -> str:
        return self._keyring.current

    @property
    def keyring(self) -> DataKeyring:
        return self._keyring

    def close(self) -> None:
        self._keyring.close()

    def open(self, column: str, stored: str, row_key: str) -> bytes:
        """A value of ``column`` (``table.column``) as stored, opened for its row."""
        return self._keyring.open(stored, field=self._columns[column].field, row_key=row_key)

    @property
    def kek_fingerprint(self) -> str:
        return self._keyring.kek_fingerprint

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def data_keys(self) -> list[DataKeyInfo]:
        return self._keyring.data_keys()

    def make_key(self, unit: UnitOfWork) -> str:
        return self._keyring.make_key(unit)

    def use(self, key_id: str) -> None:
        self._keyring.use(key_id)

    def mark_sealed_all(self, unit: UnitOfWork, key_id: str) -> None:
        self._keyring.mark_sealed_all(unit, key_id)

    def rewrap(self, unit: UnitOfWork, new_kek: bytes) -> list[str]:
        return self._keyring.rewrap(unit, new_kek)

    def has_rows(self, unit: UnitOfWork, column: str) -> bool:
        return has_rows(unit, self._columns[column])

    def has_unindexed_rows(self, unit: UnitOfWork, column: str) -> bool:
        return has_unindexed_rows(unit, self._columns[column])

    def reseal_batch(
        self,
        unit: UnitOfWork,
        column: str,
        *,
        after: object,
        limit: int,
        plaintext_allowed: bool,
    ) -> tuple[object, int, int]:
        return reseal_batch(
            unit,
            self._keyring,
            self._columns[column],
            after=after,
            limit=limit,
            plaintext_allowed=plaintext_allowed,
            index_key=self._index_key,
        )
