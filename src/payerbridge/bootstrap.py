"""The one place that picks concrete adapters and wires them into the use cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine

from payerbridge import __version__
from payerbridge.config import Settings
from payerbridge.exchange.service import ExchangePorts
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Organization
from payerbridge.store.audit import SqlAuditLog
from payerbridge.store.database import create_db_engine, migrate
from payerbridge.store.exchanges import SqlExchangeStore
from payerbridge.store.members import SqlMemberStore
from payerbridge.store.partners import SqlPartnerDirectory

__all__ = [
    "Platform",
    "build_platform",
    "launch_workflows",
    "new_id",
    "shutdown_workflows",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    members: SqlMemberStore
    partners: SqlPartnerDirectory
    exchanges: SqlExchangeStore
    audit: SqlAuditLog
    client: HttpxPartnerClient
    exchange_ports: ExchangePorts

    @property
    def us(self) -> Organization:
        return Organization(self.settings.org_name, self.settings.org_npi)

    def close(self) -> None:
        self.client.close()
        self.engine.dispose()


def build_platform(
    settings: Settings,
    *,
    partner_transport: httpx.BaseTransport | None = None,
    run_migrations: bool = True,
) -> Platform:
    """Open the database (migrating it to the newest schema) and wire the adapters."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.sqlalchemy_url)
    if run_migrations:
        migrate(engine)
    members = SqlMemberStore(engine)
    partners = SqlPartnerDirectory(engine)
    exchanges = SqlExchangeStore(engine)
    client = HttpxPartnerClient(
        timeout_seconds=settings.partner_timeout_seconds,
        user_agent=f"payerbridge/{__version__}",
        transport=partner_transport,
    )
    ports = ExchangePorts(
        exchanges=exchanges,
        partners=partners,
        client=client,
        writer=members,
        us=Organization(settings.org_name, settings.org_npi),
        clock=utcnow,
        new_id=new_id,
    )
    return Platform(
        settings=settings,
        engine=engine,
        members=members,
        partners=partners,
        exchanges=exchanges,
        audit=SqlAuditLog(engine),
        client=client,
        exchange_ports=ports,
    )


def _dbos_system_url(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"sqlite:///{(settings.data_dir / 'workflows.db').resolve()}"
    return settings.sqlalchemy_url


def launch_workflows(platform: Platform) -> None:
    """Start DBOS in this process: it recovers unfinished workflows, then runs new ones."""
    from dbos import DBOS, DBOSConfig

    from payerbridge.workflows import exchange

    exchange.bind_ports(platform.exchange_ports)
    config: DBOSConfig = {
        "name": "payerbridge",
        "system_database_url": _dbos_system_url(platform.settings),
        "application_version": __version__,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()


def shutdown_workflows() -> None:
    from dbos import DBOS

    DBOS.destroy()
