"""The Alembic migrations build exactly the schema ``store.tables`` declares."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from payerbridge import store
from payerbridge.bootstrap import build_platform
from payerbridge.config import load_settings
from payerbridge.store.sealed_fields import BULK_LINE, EXCHANGE_PAYLOAD, RESOURCE_BODY, SOURCE_FILE
from payerbridge.store.sealing import SealedField, Sealer, key_id_of
from payerbridge.store.tables import metadata


def test_migrations_match_the_declared_tables(
    tmp_path: Path, database_env: Callable[..., dict[str, str]]
) -> None:
    env = database_env(empty=True)
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=env.get("PAYERBRIDGE_DATABASE_URL")
    )
    platform = build_platform(settings)
    try:
        with platform.engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, metadata)
    finally:
        platform.close()
    assert differences == []


def test_processes_starting_together_on_one_postgresql_database_take_turns_migrating(
    tmp_path: Path, database_env: Callable[..., dict[str, str]]
) -> None:
    """An API and its workers started after an upgrade all migrate the same database."""
    env = database_env(empty=True)
    if not env:
        pytest.skip("SQLite has one writer at a time; the turns are PostgreSQL's")
    # Processes of one database on several hosts share its key-encryption key (ADR 0039).
    kek = tmp_path / "data.key"
    kek.write_text("5e" * 32)
    env = {**env, "PAYERBRIDGE_DATA_KEY_FILE": str(kek)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "payerbridge",
                "db",
                "upgrade",
                "--data-dir",
                str(tmp_path / f"d{n}"),
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    finished = [process.communicate(timeout=120) for process in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err[-400:] for _, err in finished]


_KEYS = "identity_blocking_keys"


def _alembic(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(store.__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def _key_table(engine: Engine) -> tuple[list[str], str]:
    """The key table's indexes, and on SQLite how it is declared."""
    with engine.connect() as connection:
        indexes = [i["name"] or "" for i in inspect(connection).get_indexes(_KEYS)]
        declared = ""
        if engine.dialect.name == "sqlite":
            declared = connection.exec_driver_sql(
                f"SELECT sql FROM sqlite_master WHERE name = '{_KEYS}'"
            ).scalar_one()
    return indexes, declared


def test_members_indexed_before_the_key_table_lost_its_member_index_keep_their_keys(
    tmp_path: Path, database_env: Callable[..., dict[str, str]]
) -> None:
    """Revision 0024 copies each member's keys onto its record (by which they are deleted
    when it is indexed again), then drops the key table's index by member."""
    env = database_env(empty=True)
    engine = create_engine(
        env.get("PAYERBRIDGE_DATABASE_URL") or f"sqlite:///{tmp_path / 'payerbridge.db'}"
    )
    keys = [("k1", "m1"), ("k2", "m1"), ("k1", "m2")]
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0023")
            for member in ("m1", "m2", "m3"):
                connection.exec_driver_sql(
                    "INSERT INTO identity_member_records (member_id, record, indexed_at) "
                    f"VALUES ('{member}', '{{}}', CURRENT_TIMESTAMP)"
                )
            for key, member in keys:
                connection.exec_driver_sql(
                    f"INSERT INTO {_KEYS} (key, member_id) VALUES ('{key}', '{member}')"
                )
        assert _key_table(engine)[0] == ["ix_identity_blocking_keys_member"]

        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0024")
        with engine.connect() as connection:
            held = {
                member: sorted(orjson.loads(listed))
                for member, listed in connection.exec_driver_sql(
                    "SELECT member_id, blocking_keys FROM identity_member_records"
                )
            }
            kept = sorted(connection.exec_driver_sql(f"SELECT key, member_id FROM {_KEYS}"))
        assert held == {"m1": ["k1", "k2"], "m2": ["k1"], "m3": []}
        assert kept == sorted(keys)
        indexes, declared = _key_table(engine)
        assert indexes == []
        if engine.dialect.name == "sqlite":
            assert "WITHOUT ROWID" in declared

        with engine.begin() as connection:
            command.downgrade(_alembic(connection), "0023")
        with engine.connect() as connection:
            records = inspect(connection).get_columns("identity_member_records")
            columns = {column["name"] for column in records}
            kept = sorted(connection.exec_driver_sql(f"SELECT key, member_id FROM {_KEYS}"))
        assert "blocking_keys" not in columns
        assert kept == sorted(keys)
        indexes, declared = _key_table(engine)
        assert indexes == ["ix_identity_blocking_keys_member"]
        assert "WITHOUT ROWID" not in declared
    finally:
        engine.dispose()


# As ADR 0044 sealed them before 0052: text, with the same associated data.
_TEXT_SEALED = {
    name: SealedField(field.table, field.column)
    for name, field in {
        "fhir_resources": RESOURCE_BODY,
        "bulk_output_lines": BULK_LINE,
        "exchange_payloads": EXCHANGE_PAYLOAD,
        "source_files": SOURCE_FILE,
    }.items()
}
_AT = "2027-01-01 00:00:00"
_NOT_UTF8 = b"\xff\xfeMRN|1|GARCIA\n"  # a source's file as received, before sealing began


def _rows_before_0052(connection: Connection, sealer: Sealer) -> dict[str, Any]:
    """A sealed and a plaintext value in each column 0052 converts; what each should open to."""

    def sealed(table: str, row_key: str, plaintext: bytes) -> str:
        return sealer.seal(plaintext, field=_TEXT_SEALED[table], row_key=row_key)

    def insert(table: str, **values: Any) -> None:
        names = ", ".join(values)
        connection.execute(
            text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(f':{n}' for n in values)})"),
            values,
        )

    for ref, body in (
        ("Patient/ana", sealed("fhir_resources", "Patient/ana", b'{"id": "ana"}')),
        ("Patient/old", '{"id": "old"}'),  # before sealing began: sealed at the next start
    ):
        insert(
            "fhir_resources",
            ref=ref,
            resource_type="Patient",
            resource_id=ref[8:],
            patient_id=ref[8:],
            version_id=1,
            last_updated=_AT,
            source="test",
            body=body,
        )
    insert(
        "bulk_jobs",
        id="j1",
        client_id="c",
        requester_npi="1234567893",
        kind="export",
        status="running",
        pdex_version="2.0",
        request_url="/",
        request_body="",
        total=1,
        done=0,
        lines=2,
        created_at=_AT,
        updated_at=_AT,
        transaction_time=_AT,
    )
    for seq, body in ((1, sealed("bulk_output_lines", "j1|1", b'{"line": 1}')), (2, None)):
        insert("bulk_output_lines", job_id="j1", seq=seq, file="Patient", member=0, body=body)
    insert(
        "partners",
        id="old",
        name="Old",
        npi="1245319599",
        base_url="http://old.example",
        created_at=_AT,
        updated_at=_AT,
    )
    insert(
        "exchanges",
        id="x1",
        state="received",
        partner_id="old",
        client_id="c",
        request="",
        request_hash="0" * 64,
        created_at=_AT,
        updated_at=_AT,
    )
    payload = sealed("exchange_payloads", "x1", b'{"resourceType": "Bundle"}')
    insert("exchange_payloads", exchange_id="x1", received_at=_AT, sha256="0" * 64, body=payload)
    for file_id, body in (
        ("f1", sealed("source_files", "f1", b"MRN|1|GARCIA\n").encode()),
        ("f2", _NOT_UTF8),
        ("f3", b""),  # mapped long ago: its body dropped
    ):
        insert(
            "source_files",
            id=file_id,
            source_id="s",
            name="roster.psv",
            sha256=file_id,
            size=1,
            body=body,
            mapping="m@1",
            received_at=_AT,
            mapped_at=_AT,
            report="{}",
        )
    return {
        "fhir_resources": {"Patient/ana": b'{"id": "ana"}', "Patient/old": None},
        "bulk_output_lines": {"j1|1": b'{"line": 1}', "j1|2": None},
        "exchange_payloads": {"x1": b'{"resourceType": "Bundle"}'},
        "source_files": {"f1": b"MRN|1|GARCIA\n", "f2": None, "f3": None},
    }


_BODIES = {
    "fhir_resources": "SELECT ref, body FROM fhir_resources",
    "bulk_output_lines": "SELECT job_id || '|' || seq, body FROM bulk_output_lines",
    "exchange_payloads": "SELECT exchange_id, body FROM exchange_payloads",
    "source_files": "SELECT id, body FROM source_files",
}


def _bodies(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        return {
            table: {key: body for key, body in connection.execute(text(query))}
            for table, query in _BODIES.items()
        }


def test_0052_stores_the_hot_sealed_columns_as_binary_and_back(
    tmp_path: Path, database_env: Callable[..., dict[str, str]]
) -> None:
    """Sealed text becomes ``pb1:<key id>:`` and the raw nonce and ciphertext, opening under
    the same key and associated data; a value not sealed yet keeps its bytes for the next
    start's pass; the downgrade gives back the text."""
    env = database_env(empty=True)
    engine = create_engine(
        env.get("PAYERBRIDGE_DATABASE_URL") or f"sqlite:///{tmp_path / 'payerbridge.db'}"
    )
    sealer = Sealer({"k1": b"k" * 32}, "k1", nonces=os.urandom, fetch=lambda _: None)
    binary = {table: dataclasses.replace(f, binary=True) for table, f in _TEXT_SEALED.items()}
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0050")
            expected = _rows_before_0052(connection, sealer)
        before = _bodies(engine)

        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0052")
        after = _bodies(engine)

        for table, opens_to in expected.items():
            for row_key, plaintext in opens_to.items():
                stored, was = after[table][row_key], before[table][row_key]
                assert stored is None or isinstance(stored, bytes), (table, row_key)
                if plaintext is not None:
                    assert stored.startswith(b"pb1:k1:") and key_id_of(stored) == "k1"
                    field, row = binary[table], row_key
                    assert sealer.open(stored, field=field, row_key=row) == plaintext
                elif was is not None:  # kept as it was, to be sealed at the next start
                    assert stored == (was.encode() if isinstance(was, str) else was)
        assert after["source_files"]["f2"] == _NOT_UTF8
        assert after["bulk_output_lines"]["j1|2"] is None

        with engine.begin() as connection:
            command.downgrade(_alembic(connection), "0050")
        assert _bodies(engine) == before
    finally:
        engine.dispose()


def test_0056_adds_the_pieces_of_source_files_and_takes_them_back(
    tmp_path: Path, database_env: Callable[..., dict[str, str]]
) -> None:
    """Up: a file kept whole before stays as it was, beside the new table of pieces.
    Down: the pieces go with their table (a file kept in pieces then reads as purged)."""
    env = database_env(empty=True)
    engine = create_engine(
        env.get("PAYERBRIDGE_DATABASE_URL") or f"sqlite:///{tmp_path / 'payerbridge.db'}"
    )
    whole = b"pb1:k1:" + b"\x00sealed"
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0055")
            connection.execute(
                text(
                    "INSERT INTO source_files (id, source_id, name, sha256, size, body, mapping,"
                    " received_at, mapped_at, report) VALUES ('f1', 's', 'n', 'd', 1, :body,"
                    " 'm@1', '2026-01-01', '2026-01-01', '{}')"
                ),
                {"body": whole},
            )
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0056")
            kept = connection.execute(text("SELECT body FROM source_files")).scalar_one()
            assert bytes(kept) == whole
            assert "source_file_chunks" in inspect(connection).get_table_names()
        with engine.begin() as connection:
            command.downgrade(_alembic(connection), "0055")
            assert "source_file_chunks" not in inspect(connection).get_table_names()
    finally:
        engine.dispose()
