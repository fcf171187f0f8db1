"""The Alembic migrations build exactly the schema ``store.tables`` declares."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from payerbridge.bootstrap import build_platform
from payerbridge.config import load_settings
from payerbridge.store.tables import metadata


def test_migrations_match_the_declared_tables(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    env = database_env()
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
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    """An API and its workers started after an upgrade all migrate the same database."""
    env = database_env()
    if not env:
        pytest.skip("SQLite has one writer at a time; the turns are PostgreSQL's")
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
