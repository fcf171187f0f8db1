"""Whether the database answers (``oversight.ports.Readiness``): ``GET /healthz``."""

from __future__ import annotations

from sqlalchemy import Engine, text

__all__ = ["SqlReadiness"]


class SqlReadiness:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ping(self) -> None:
        # The engine's error hook turns a database that does not answer into
        # StoreUnavailable (503 with Retry-After).
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))
