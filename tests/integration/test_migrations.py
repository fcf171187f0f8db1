"""The Alembic migrations build exactly the schema ``store.tables`` declares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
