"""The clients registered with our authorization server, and the assertions they used.

Only public keys are kept (a JWK Set inline, or the URL that publishes it): a stolen
database hands out no access. ``get`` runs on every authenticated request (a revoked
client's tokens stop at once), so it is DB-API SQL by primary key on the reading path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, delete, select, update

from payerbridge.security.model import ClientKind, OrganizationEvidence, RegisteredClient
from payerbridge.store.dbapi import DialectSql, driver_sql, raw_cursor
from payerbridge.store.tables import api_clients, client_assertions
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = ["SqlAssertionLedger", "SqlClientDirectory"]

_COLUMNS = (
    "id, name, npi, kind, scopes, jwks, jwks_url, certificate_uri, disabled_at, "
    "npi_evidence, npi_vouched_by, npi_vouched_at"
)


def _client(row: Any, read_timestamp: Callable[[Any], datetime | None]) -> RegisteredClient:
    (client_id, name, npi, kind, scopes, jwks, jwks_url, certificate_uri, disabled_at) = row[:9]
    evidence, vouched_by, vouched_at = row[9:]
    return RegisteredClient(
        client_id=ClientId(client_id),
        name=name,
        npi=npi,
        scopes=frozenset(scopes.split()),
        kind=ClientKind(kind),
        jwks=orjson.loads(jwks) if jwks else None,
        jwks_url=jwks_url,
        certificate_uri=certificate_uri,
        revoked_at=read_timestamp(disabled_at),
        npi_evidence=OrganizationEvidence(evidence),
        npi_vouched_by=vouched_by,
        npi_vouched_at=read_timestamp(vouched_at),
    )


def _as_is(value: datetime | None) -> datetime | None:
    return value  # read through the UtcDateTime column type already


def _fields(client: RegisteredClient) -> dict[str, Any]:
    return {
        "name": client.name,
        "kind": client.kind.value,
        "scopes": " ".join(sorted(client.scopes)),
        "jwks": orjson.dumps(client.jwks).decode() if client.jwks is not None else None,
        "jwks_url": client.jwks_url,
        "certificate_uri": client.certificate_uri,
    }


def _evidence(client: RegisteredClient) -> dict[str, Any]:
    return {
        "npi_evidence": client.npi_evidence.value,
        "npi_vouched_by": client.npi_vouched_by,
        "npi_vouched_at": client.npi_vouched_at,
    }


# Clients whose rows were read last, by the row itself: every request reads its client's
# row (a revocation holds at once), and an unchanged row need not be parsed again (its
# key set, scopes and timestamps: a few percent of a ``$member-match``).
_PARSED_ROWS = 256


class SqlClientDirectory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._parsed: dict[tuple[Any, ...], RegisteredClient] = {}
        self._read_timestamp = DialectSql(engine.dialect).read_timestamp
        self._by_id = driver_sql(
            engine.dialect, f"SELECT {_COLUMNS} FROM {api_clients.name} WHERE id = :id"
        )

    def get(self, client_id: ClientId) -> RegisteredClient | None:
        with raw_cursor(self._engine) as cursor:
            cursor.execute(self._by_id, {"id": client_id})
            row = cursor.fetchone()
        if row is None:
            return None
        row = tuple(row)
        client = self._parsed.get(row)
        if client is None:
            client = _client(row, self._read_timestamp)
            if len(self._parsed) >= _PARSED_ROWS:
                self._parsed.clear()
            self._parsed[row] = client
        return client

    def list(self) -> list[RegisteredClient]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(
                    api_clients.c.id,
                    api_clients.c.name,
                    api_clients.c.npi,
                    api_clients.c.kind,
                    api_clients.c.scopes,
                    api_clients.c.jwks,
                    api_clients.c.jwks_url,
                    api_clients.c.certificate_uri,
                    api_clients.c.disabled_at,
                    api_clients.c.npi_evidence,
                    api_clients.c.npi_vouched_by,
                    api_clients.c.npi_vouched_at,
                ).order_by(api_clients.c.id)
            ).all()
        return [_client(row, _as_is) for row in rows]

    def add(self, unit: UnitOfWork, client: RegisteredClient, *, at: datetime) -> None:
        sql_unit(unit).connection.execute(
            api_clients.insert().values(
                id=client.client_id,
                created_at=at,
                npi=client.npi,
                **_fields(client),
                **_evidence(client),
            )
        )

    def update(self, unit: UnitOfWork, client: RegisteredClient, *, at: datetime) -> None:
        proven = client.npi_evidence is OrganizationEvidence.CERTIFICATE
        sql_unit(unit).connection.execute(
            update(api_clients)
            .where(api_clients.c.id == client.client_id, api_clients.c.npi == client.npi)
            .values(**_fields(client), **(_evidence(client) if proven else {}))
        )

    def approve(
        self, unit: UnitOfWork, client_id: ClientId, npi: str, *, by: str, at: datetime
    ) -> bool:
        result = sql_unit(unit).connection.execute(
            update(api_clients)
            .where(
                api_clients.c.id == client_id,
                api_clients.c.npi == npi,
                api_clients.c.npi_evidence == OrganizationEvidence.PENDING.value,
                api_clients.c.disabled_at.is_(None),
            )
            .values(
                npi_evidence=OrganizationEvidence.OPERATOR.value,
                npi_vouched_by=by,
                npi_vouched_at=at,
            )
        )
        return result.rowcount == 1

    def revoke(self, unit: UnitOfWork, client_id: ClientId, *, at: datetime) -> bool:
        result = sql_unit(unit).connection.execute(
            update(api_clients)
            .where(api_clients.c.id == client_id, api_clients.c.disabled_at.is_(None))
            .values(disabled_at=at)
        )
        return result.rowcount == 1


class SqlAssertionLedger:
    def remember(
        self, unit: UnitOfWork, client_id: ClientId, token_id: str, *, until: datetime
    ) -> None:
        sql_unit(unit).connection.execute(
            client_assertions.insert().values(client_id=client_id, jti=token_id, expires_at=until)
        )

    def forget_expired(self, unit: UnitOfWork, *, now: datetime) -> int:
        result = sql_unit(unit).connection.execute(
            delete(client_assertions).where(client_assertions.c.expires_at < now)
        )
        return result.rowcount
