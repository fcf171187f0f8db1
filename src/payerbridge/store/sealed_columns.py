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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, select, text, tuple_, update

from payerbridge.errors import DataKeyUnavailable
from payerbridge.identity.model import IdentityLink
from payerbridge.store.at_rest import token_index_key
from payerbridge.store.data_keys import DataKeyInfo, DataKeyring
from payerbridge.store.sealed_fields import (
    BULK_LINE,
    BULK_REQUEST,
    CONSENT_RESOURCE,
    EXCHANGE_PAYLOAD,
    IDEMPOTENT_BODY,
    MEMBER_GROUP,
    ONBOARDING_BUNDLE,
    QUARANTINED_BODY,
    RESOURCE_BODY,
    SOURCE_FILE,
    SOURCE_FILE_CHUNK,
)
from payerbridge.store.sealing import SealedField, is_sealed, key_id_of
from payerbridge.store.tables import (
    UtcDateTime,
    bulk_jobs,
    bulk_output_lines,
    consents,
    exchange_payloads,
    exchanges,
    fhir_resources,
    fhir_tokens,
    idempotent_responses,
    identity_links,
    identity_member_records,
    identity_reviews,
    member_groups,
    onboarding_members,
    pull_schedules,
    quarantined_resources,
    sealed_columns,
    source_file_chunks,
    source_files,
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
    "Resealing",
    "SealedColumn",
    "SealedLinks",
    "SqlSealedData",
    "TOKEN_VALUES",
    "has_rows",
    "has_unkeyed_tokens",
    "key_tokens_batch",
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
    order of (one column or several), the columns whose values (joined by ``|``) a value
    is sealed for, and the column of its blind index, if it is looked up by value."""

    field: SealedField
    table: Table
    order_by: str | tuple[str, ...]
    bound_to: tuple[str, ...]
    blind_index: str | None = None
    most: int | None = None  # rows a batch at most: values too large to hold 500 of

    @property
    def name(self) -> str:
        return f"{self.field.table}.{self.field.column}"

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (self.order_by,) if isinstance(self.order_by, str) else self.order_by

    def row_key(self, row: Any) -> str:
        return "|".join(str(row._mapping[column]) for column in self.bound_to)

    def key_of(self, row: Any) -> Any:
        """The row's place in the pass's order (a value, or a tuple of several)."""
        values = tuple(row._mapping[column] for column in self.key_columns)
        return values[0] if len(values) == 1 else values

    def after(self, key: Any) -> ColumnElement[bool]:
        columns = [self.table.c[name] for name in self.key_columns]
        later: ColumnElement[bool] = (
            columns[0] > key if len(columns) == 1 else tuple_(*columns) > tuple_(*key)
        )
        return later

    def at(self, row: Any) -> ColumnElement[bool]:
        return and_(*(self.table.c[name] == row._mapping[name] for name in self.key_columns))


SEALED_COLUMNS = (
    SealedColumn(MEMBER_RECORD, identity_member_records, "member_id", ("member_id",)),
    SealedColumn(REVIEW_REQUEST, identity_reviews, "id", ("id",)),
    SealedColumn(EXCHANGE_REQUEST, exchanges, "id", ("id",)),
    SealedColumn(PULL_REQUEST, pull_schedules, "id", ("id",)),
    SealedColumn(LINK_VALUE, identity_links, "id", ("member_id", "kind", "system"), "value_key"),
    # Member data wherever it sits (ADR 0044).
    SealedColumn(RESOURCE_BODY, fhir_resources, "ref", ("ref",)),
    SealedColumn(EXCHANGE_PAYLOAD, exchange_payloads, "exchange_id", ("exchange_id",)),
    SealedColumn(MEMBER_GROUP, member_groups, "id", ("id",)),
    SealedColumn(BULK_REQUEST, bulk_jobs, "id", ("id",)),
    SealedColumn(BULK_LINE, bulk_output_lines, ("job_id", "seq"), ("job_id", "seq")),
    SealedColumn(
        ONBOARDING_BUNDLE,
        onboarding_members,
        ("onboarding_id", "position"),
        ("onboarding_id", "position"),
    ),
    SealedColumn(QUARANTINED_BODY, quarantined_resources, "seq", ("id",)),
    SealedColumn(CONSENT_RESOURCE, consents, "id", ("id",)),
    # A file kept whole before 0056 may be hundreds of MB: one a batch. Its pieces
    # since (4 MiB each, issue 71): a few a batch.
    SealedColumn(SOURCE_FILE, source_files, "id", ("id",), most=1),
    SealedColumn(
        SOURCE_FILE_CHUNK, source_file_chunks, ("file_id", "seq"), ("file_id", "seq"), most=8
    ),
    SealedColumn(
        IDEMPOTENT_BODY,
        idempotent_responses,
        ("client_id", "idempotency_key"),
        ("client_id", "idempotency_key"),
    ),
)

# The search index's values: not sealed (nothing reads them back) but replaced by their
# blind keys (``fhir_tokens.value_key``); the pass keys the rows stored before 0047.
TOKEN_VALUES = "fhir_tokens.value"


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
    query = select(column.table.c[column.key_columns[0]]).where(value.is_not(None)).limit(1)
    return sql_unit(unit).connection.execute(query).first() is not None


def has_unindexed_rows(unit: UnitOfWork, column: SealedColumn) -> bool:
    """Whether ``column`` has rows stored before it was sealed (no blind index yet)."""
    if column.blind_index is None:
        return False
    blind = column.table.c[column.blind_index]
    query = select(column.table.c[column.key_columns[0]]).where(blind.is_(None)).limit(1)
    return sql_unit(unit).connection.execute(query).first() is not None


@dataclass(frozen=True)
class Resealing:
    """How a pass moves values under the current data key: the keyring that seals them,
    whether a plaintext value may be sealed as it is (``plaintext_allowed``: sealing has
    not completed), and the key a plaintext value's blind index is made with."""

    keyring: DataKeyring
    plaintext_allowed: bool
    index_key: bytes


def reseal_batch(
    unit: UnitOfWork, column: SealedColumn, resealing: Resealing, *, after: Any, limit: int
) -> tuple[Any, int, int]:
    """Move the next ``limit`` rows of ``column`` after the key ``after`` (of its
    ``order_by``) under the current data key, in ``unit``: (the last key read, or None at
    the end; how many rows were read; how many values were written). A value stored
    before sealing began is sealed as it is when ``plaintext_allowed``, or when its row
    has no blind index yet; otherwise it is refused."""
    table, field = column.table, column.field
    limit = min(limit, column.most or limit)
    value = table.c[field.column]
    order = [table.c[name] for name in column.key_columns]
    wanted = {*column.key_columns, value.name, *column.bound_to}
    if column.blind_index is not None:
        wanted.add(column.blind_index)
    query = select(*(table.c[name] for name in sorted(wanted))).order_by(*order).limit(limit)
    if after is not None:
        query = query.where(column.after(after))
    connection = sql_unit(unit).connection
    rows = connection.execute(query).all()
    keyring, plaintext_allowed, index_key = (
        resealing.keyring,
        resealing.plaintext_allowed,
        resealing.index_key,
    )
    current = keyring.current
    moved = 0
    for row in rows:
        stored = row._mapping[value.name]
        if not stored:
            continue  # nothing kept (a job's request once it ended, a claim not answered)
        # A binary column's value is bytes, its key id read from its ``pb1:<key id>:``.
        if key_id_of(stored) == current:
            continue
        row_key = column.row_key(row)
        changes: dict[str, str | bytes] = {}
        if is_sealed(stored):
            plaintext = keyring.open(stored, field=field, row_key=row_key)
        elif plaintext_allowed or _unindexed(column, row):
            plaintext = bytes(stored) if field.binary else stored.encode()
            if column.blind_index is not None:
                changes[column.blind_index] = _blind_key(index_key, stored)
        else:
            raise DataKeyUnavailable(
                f"{column.name} holds a plaintext value though sealing is complete: it "
                "was written outside payerbridge, or by a version before sealing began"
            )
        changes[field.column] = (
            keyring.seal_bytes(plaintext, field=field, row_key=row_key)
            if field.binary
            else keyring.seal(plaintext, field=field, row_key=row_key)
        )
        written = connection.execute(
            update(table).where(column.at(row), value == stored).values(changes)
        )
        moved += int(written.rowcount or 0)
    last = column.key_of(rows[-1]) if len(rows) == limit else None
    return last, len(rows), moved


def has_unkeyed_tokens(unit: UnitOfWork) -> bool:
    """Whether the search index has rows stored before 0047 (a value, no blind key)."""
    query = select(fhir_tokens.c.ref).where(fhir_tokens.c.value_key.is_(None)).limit(1)
    return sql_unit(unit).connection.execute(query).first() is not None


def key_tokens_batch(unit: UnitOfWork, token_key: bytes, *, limit: int) -> tuple[Any, int, int]:
    """Give up to ``limit`` rows of the search index stored before 0047 their blind keys
    and empty their values, in ``unit``: (True while more may be left, else None; rows
    read; rows written). Keyed rows leave the rows read, so each batch reads the next."""
    tokens = fhir_tokens.c
    query = (
        select(tokens.ref, tokens.resource_type, tokens.param, tokens.system, tokens.value)
        .where(tokens.value_key.is_(None))
        .limit(limit)
    )
    connection = sql_unit(unit).connection
    rows = connection.execute(query).all()
    moved = 0
    for row in rows:
        written = connection.execute(
            update(fhir_tokens)
            .where(
                tokens.ref == row.ref,
                tokens.resource_type == row.resource_type,
                tokens.param == row.param,
                tokens.system == row.system,
                tokens.value == row.value,
                tokens.value_key.is_(None),
            )
            .values(value="", value_key=_blind_key(token_key, row.value))
        )
        moved += int(written.rowcount or 0)
    return (True if len(rows) == limit else None), len(rows), moved


def _unindexed(column: SealedColumn, row: Any) -> bool:
    return column.blind_index is not None and row._mapping[column.blind_index] is None


_MARK_SEALED = text(
    f"INSERT INTO {sealed_columns.name} (name, sealed_at) VALUES (:name, :sealed_at) "
    "ON CONFLICT (name) DO NOTHING"
).bindparams(bindparam("sealed_at", type_=UtcDateTime()))


class SqlSealedData:
    """The data keys and the sealed columns, for rotation (``security.data_rotation``)."""

    def __init__(self, keyring: DataKeyring, index_key: bytes, secret: bytes) -> None:
        self._keyring = keyring
        self._index_key = index_key
        self._token_key = token_index_key(secret)
        self._columns = {column.name: column for column in SEALED_COLUMNS}

    @property
    def current(self) -> str:
        return self._keyring.current

    @property
    def keyring(self) -> DataKeyring:
        return self._keyring

    def close(self) -> None:
        self._keyring.close()

    def open(self, column: str, stored: str | bytes | memoryview, row_key: str) -> bytes:
        """A value of ``column`` (``table.column``) as stored, opened for its row."""
        return self._keyring.open(stored, field=self._columns[column].field, row_key=row_key)

    @property
    def kek_fingerprint(self) -> str:
        return self._keyring.kek_fingerprint

    @property
    def columns(self) -> list[str]:
        return [*self._columns, TOKEN_VALUES]

    def data_keys(self) -> list[DataKeyInfo]:
        return self._keyring.data_keys()

    def make_key(self, unit: UnitOfWork) -> str:
        return self._keyring.make_key(unit)

    def use(self, key_id: str) -> None:
        self._keyring.use(key_id)

    def mark_sealed_all(self, unit: UnitOfWork, key_id: str) -> None:
        self._keyring.mark_sealed_all(unit, key_id)

    def pending_columns(self, unit: UnitOfWork) -> list[str]:
        connection = sql_unit(unit).connection
        done = set(connection.execute(select(sealed_columns.c.name)).scalars())
        return [column for column in self.columns if column not in done]

    def mark_columns_sealed(self, unit: UnitOfWork, columns: Sequence[str]) -> None:
        if columns:  # two processes starting at once may both have sealed them
            sql_unit(unit).connection.execute(
                _MARK_SEALED, [{"name": name, "sealed_at": unit.now} for name in columns]
            )

    def rewrap(self, unit: UnitOfWork, new_kek: bytes) -> list[str]:
        return self._keyring.rewrap(unit, new_kek)

    def has_rows(self, unit: UnitOfWork, column: str) -> bool:
        if column == TOKEN_VALUES:
            return has_unkeyed_tokens(unit)
        return has_rows(unit, self._columns[column])

    def has_unindexed_rows(self, unit: UnitOfWork, column: str) -> bool:
        if column == TOKEN_VALUES:
            return has_unkeyed_tokens(unit)
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
        if column == TOKEN_VALUES:
            return key_tokens_batch(unit, self._token_key, limit=limit)
        resealing = Resealing(self._keyring, plaintext_allowed, self._index_key)
        return reseal_batch(unit, self._columns[column], resealing, after=after, limit=limit)
