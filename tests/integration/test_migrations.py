"""The Alembic migrations build exactly the schema ``store.tables`` declares."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, inspect

from payerbridge import store
from payerbridge.bootstrap import build_platform
from payerbridge.config import load_settings
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
