"""The hot sealed columns become binary: ``pb1:<key id>:`` and then the nonce and
ciphertext as bytes, with no base64 (ADR 0044, binary columns for the hot paths)

``fhir_resources.body``, ``bulk_output_lines.body`` and ``exchange_payloads.body`` change
type from text; ``source_files.body`` was binary already, holding the sealed text as its
ASCII bytes. A sealed value has its base64 decoded; the associated data is unchanged, so
it opens under its key as before. A value not sealed yet (a database upgraded from before
sealing began, whose first start has not sealed it) is kept as its UTF-8 bytes, for that
start's pass to seal (``sealed_columns.reseal_batch``).

PostgreSQL converts in the statements that change the types; SQLite has no base64 in
SQL, so its rows are converted here, a batch at a time, after the tables are copied.

Revision ID: 0052
Revises: 0050
Create Date: 2026-11-28 10:00:00.000000
"""

import binascii
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0052"
down_revision = "0050"
branch_labels = None
depends_on = None

_TO_BINARY = ("fhir_resources", "bulk_output_lines", "exchange_payloads")
_ALREADY_BINARY = "source_files"
_NULLABLE = {"fhir_resources": False, "bulk_output_lines": True, "exchange_payloads": False}
_PREFIX = b"pb1:"
_BATCH = 1000

# Sealed text is ``pb1:<key id>:<base64>``: neither a key id nor base64 holds a colon.
_PG_TEXT_TO_BINARY = (
    "CASE WHEN {text} ~ '^pb1:[^:]+:' "
    "THEN convert_to('pb1:' || split_part({text}, ':', 2) || ':', 'UTF8') "
    "|| decode(split_part({text}, ':', 3), 'base64') "
    "ELSE convert_to({text}, 'UTF8') END"
)
_PG_IS_SEALED = "substring({bytes} from 1 for 4) = convert_to('pb1:', 'UTF8')"
# A binary value's head ends at the first colon after ``pb1:``.
_PG_HEAD = (
    "substring({bytes} from 1 for 4 "
    "+ position(convert_to(':', 'UTF8') in substring({bytes} from 5)))"
)
# PostgreSQL's base64 breaks a line every 76 characters; the sealed text has none.
_PG_BINARY_TO_TEXT = (
    f"CASE WHEN {_PG_IS_SEALED} THEN convert_from({_PG_HEAD}, 'UTF8') || replace(encode("
    f"substring({{bytes}} from length({_PG_HEAD}) + 1), 'base64'), E'\\n', '') "
    "ELSE convert_from({bytes}, 'UTF8') END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TO_BINARY:
            op.alter_column(
                table,
                "body",
                type_=sa.LargeBinary(),
                existing_type=sa.Text(),
                existing_nullable=_NULLABLE[table],
                postgresql_using=_PG_TEXT_TO_BINARY.format(text="body"),
            )
        as_text = "convert_from(body, 'UTF8')"
        op.execute(
            f"UPDATE {_ALREADY_BINARY} SET body = {_PG_TEXT_TO_BINARY.format(text=as_text)} "
            f"WHERE {_PG_IS_SEALED.format(bytes='body')}"
        )
        return
    for table in _TO_BINARY:
        with op.batch_alter_table(table) as batch:  # the copy casts text to its UTF-8 bytes
            batch.alter_column(
                "body",
                type_=sa.LargeBinary(),
                existing_type=sa.Text(),
                existing_nullable=_NULLABLE[table],
            )
    for table in (*_TO_BINARY, _ALREADY_BINARY):
        _convert_sqlite_rows(table, _binary_of)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        as_text = _PG_BINARY_TO_TEXT.format(bytes="body")
        op.execute(
            f"UPDATE {_ALREADY_BINARY} SET body = convert_to({as_text}, 'UTF8') "
            f"WHERE {_PG_IS_SEALED.format(bytes='body')}"
        )
        for table in _TO_BINARY:
            op.alter_column(
                table,
                "body",
                type_=sa.Text(),
                existing_type=sa.LargeBinary(),
                existing_nullable=_NULLABLE[table],
                postgresql_using=as_text,
            )
        return
    # Converted first: the copy's cast to text then leaves each value as it is.
    for table in _TO_BINARY:
        _convert_sqlite_rows(table, _text_of)
    _convert_sqlite_rows(_ALREADY_BINARY, _text_bytes_of)
    for table in _TO_BINARY:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "body",
                type_=sa.Text(),
                existing_type=sa.LargeBinary(),
                existing_nullable=_NULLABLE[table],
            )


def _split(raw: bytes) -> tuple[bytes, bytes] | None:
    """A sealed value's head (``pb1:<key id>:``) and the rest; None when not sealed."""
    if not raw.startswith(_PREFIX):
        return None
    key_id, sep, rest = raw[len(_PREFIX) :].partition(b":")
    return (_PREFIX + key_id + b":", rest) if sep and key_id else None


def _binary_of(stored: str | bytes) -> bytes:
    """A value as the binary column keeps it: sealed text decoded, plaintext as bytes."""
    raw = stored.encode() if isinstance(stored, str) else bytes(stored)
    sealed = _split(raw)
    if sealed is None:
        return raw
    head, body = sealed
    return head + binascii.a2b_base64(body, strict_mode=True)


def _text_bytes_of(stored: str | bytes) -> bytes:
    """A binary value as sealed text's ASCII bytes (the reverse of ``_binary_of``)."""
    raw = stored.encode() if isinstance(stored, str) else bytes(stored)
    sealed = _split(raw)
    if sealed is None:
        return raw
    head, blob = sealed
    return head + binascii.b2a_base64(blob, newline=False)


def _text_of(stored: str | bytes) -> str:
    return _text_bytes_of(stored).decode()


def _convert_sqlite_rows(table: str, convert: Callable[[bytes], str | bytes]) -> None:
    """Each row's body through ``convert``, a batch at a time in rowid order."""
    bind = op.get_bind()
    select = sa.text(
        f"SELECT rowid, body FROM {table} WHERE rowid > :after AND body IS NOT NULL "
        "ORDER BY rowid LIMIT :limit"
    )
    update = sa.text(f"UPDATE {table} SET body = :body WHERE rowid = :id")
    after = 0
    while True:
        rows = bind.execute(select, {"after": after, "limit": _BATCH}).all()
        if not rows:
            return
        changed = []
        for rowid, stored in rows:
            converted = convert(stored)
            if converted != stored:
                changed.append({"id": rowid, "body": converted})
        if changed:
            bind.execute(update, changed)
        after = rows[-1][0]
