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

from dataclasses import dataclass

from sqlalchemy import Table, select, update

from payerbridge.errors import DataKeyUnavailable
from payerbridge.security.sealing import SealedField, is_sealed, key_id_of
from payerbridge.store.data_keys import DataKeyInfo, DataKeyring
from payerbridge.store.tables import exchanges, identity_member_records, identity_reviews
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = [
    "EXCHANGE_REQUEST",
    "MEMBER_RECORD",
    "REVIEW_REQUEST",
    "SEALED_COLUMNS",
    "SealedColumn",
    "SqlSealedData",
    "has_rows",
    "reseal_batch",
]

# The standardised demographics matching compares, one per indexed member.
MEMBER_RECORD = SealedField(identity_member_records.name, "record")
# The request a review case holds, as matching read it.
REVIEW_REQUEST = SealedField(identity_reviews.name, "request_record")
# An exchange's submitted request: the member's demographics, cards and consent.
EXCHANGE_REQUEST = SealedField(exchanges.name, "request")


@dataclass(frozen=True)
class SealedColumn:
    """A sealed column with the table it is in and the key its rows are bound to."""

    field: SealedField
    table: Table
    row_key: str  # the primary key's column: a value is sealed for its row

    @property
    def name(self) -> str:
        return f"{self.field.table}.{self.field.column}"


SEALED_COLUMNS = (
    SealedColumn(MEMBER_RECORD, identity_member_records, "member_id"),
    SealedColumn(REVIEW_REQUEST, identity_reviews, "id"),
    SealedColumn(EXCHANGE_REQUEST, exchanges, "id"),
)


def has_rows(unit: UnitOfWork, column: SealedColumn) -> bool:
    """Whether ``column`` holds any value (a database that had data before sealing)."""
    table = column.table
    value = table.c[column.field.column]
    found = (
        sql_unit(unit)
        .connection.execute(select(table.c[column.row_key]).where(value.is_not(None)).limit(1))
        .first()
    )
    return found is not None


def reseal_batch(
    unit: UnitOfWork,
    keyring: DataKeyring,
    column: SealedColumn,
    *,
    after: str | None,
    limit: int,
    plaintext_allowed: bool,
) -> tuple[str | None, int, int]:
    """Move the next ``limit`` rows of ``column`` after the row key ``after`` under the
    current data key, in ``unit``: (the last row key read, or None at the end; how many
    rows were read; how many values were written). ``plaintext_allowed``: a value stored
    before sealing began is sealed as it is; otherwise it is refused."""
    table, field = column.table, column.field
    key, value = table.c[column.row_key], table.c[field.column]
    query = select(key, value).order_by(key).limit(limit)
    if after is not None:
        query = query.where(key > after)
    connection = sql_unit(unit).connection
    rows = connection.execute(query).all()
    current = keyring.current
    moved = 0
    for row_key, stored in rows:
        if stored is None or key_id_of(stored) == current:
            continue
        if is_sealed(stored):
            plaintext = keyring.open(stored, field=field, row_key=row_key)
        elif plaintext_allowed:
            plaintext = stored.encode()
        else:
            raise DataKeyUnavailable(
                f"{column.name} holds a plaintext value though sealing is complete: it "
                "was written outside payerbridge, or by a version before sealing began"
            )
        sealed = keyring.seal(plaintext, field=field, row_key=row_key)
        written = connection.execute(
            update(table).where(key == row_key, value == stored).values({field.column: sealed})
        )
        moved += int(written.rowcount or 0)
    return (rows[-1][0] if len(rows) == limit else None), len(rows), moved


class SqlSealedData:
    """The data keys and the sealed columns, for rotation (``security.data_rotation``)."""

    def __init__(self, keyring: DataKeyring) -> None:
        self._keyring = keyring
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

    def reseal_batch(
        self,
        unit: UnitOfWork,
        column: str,
        *,
        after: str | None,
        limit: int,
        plaintext_allowed: bool,
    ) -> tuple[str | None, int, int]:
        return reseal_batch(
            unit,
            self._keyring,
            self._columns[column],
            after=after,
            limit=limit,
            plaintext_allowed=plaintext_allowed,
        )
