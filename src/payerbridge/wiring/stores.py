"""The database, its schema migrated, and the stores more than one room is wired to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from payerbridge.clock import simulate, utcnow
from payerbridge.config import Settings
from payerbridge.metrics import observe_events
from payerbridge.security.data_rotation import SealWhatIsLeft, seal_what_is_left
from payerbridge.security.unit import DataKeysUnit
from payerbridge.store.at_rest import AtRest, attach, token_index_key
from payerbridge.store.audit import SqlAuditTrail
from payerbridge.store.breakers import SqlBreakerStore
from payerbridge.store.consents import SqlConsentStore
from payerbridge.store.data_keys import (
    DataKeyring,
    add_first_key,
    has_data_keys,
    kek_path,
    load_keyring,
)
from payerbridge.store.engines import (
    WalCheckpointer,
    create_db_engine,
    create_reader,
    migrate,
)
from payerbridge.store.exchanges import SqlExchangeStore
from payerbridge.store.key_files import identity_secret
from payerbridge.store.members import SqlMemberStore
from payerbridge.store.partners import SqlPartnerDirectory
from payerbridge.store.sealed_columns import SqlSealedData, link_index_key
from payerbridge.store.unit_of_work import SqlTransactions
from payerbridge.transactions import UnitAuditLog

__all__ = ["Stores", "open_stores"]


@dataclass(frozen=True)
class Stores:
    """The database and the stores more than one room is wired to."""

    engine: Engine
    reader: Engine  # the engine for reads: ``engine`` itself on PostgreSQL
    transactions: SqlTransactions
    keyring: DataKeyring  # seals the PHI columns outside the FHIR store (ADR 0039)
    members: SqlMemberStore
    partners: SqlPartnerDirectory
    exchanges: SqlExchangeStore
    breakers: SqlBreakerStore
    consents: SqlConsentStore
    audit: UnitAuditLog
    checkpointer: WalCheckpointer | None  # SQLite's write-ahead log, checkpointed


def open_stores(settings: Settings, *, run_migrations: bool) -> Stores:
    """The database, its schema migrated to the newest (unless told not to), and its stores."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    simulate(settings.simulated_clock_file)  # before anything is stamped with the time
    engine = create_db_engine(
        settings.sqlalchemy_url, max_connections=settings.database_max_connections
    )
    if run_migrations:
        migrate(engine)
    try:
        keyring = _keyring(engine, settings)
    except BaseException:
        engine.dispose()  # start-up stops here: nothing is left open behind it
        raise
    reader = create_reader(engine)
    # Member data is sealed wherever it is stored (ADR 0044): the keys go with the engines.
    keys = AtRest(keyring, token_index_key(identity_secret(settings)))
    attach(engine, keys)
    attach(reader, keys)
    checkpointer = None
    if settings.is_sqlite:
        checkpointer = WalCheckpointer()
        checkpointer.watch(settings.sqlalchemy_url)
    transactions = SqlTransactions(engine, clock=utcnow)
    transactions.observe_committed = observe_events  # the business metrics (ADR 0032)
    # Values stored before sealing began are sealed before anything reads them.
    secret = identity_secret(settings)
    sealed = SqlSealedData(keyring, link_index_key(secret), secret)
    seal_what_is_left(
        SealWhatIsLeft("payerbridge"), DataKeysUnit(transactions, sealed, kek_path(settings))
    )
    return Stores(
        engine=engine,
        reader=reader,
        transactions=transactions,
        keyring=keyring,
        members=SqlMemberStore(engine, reader=reader),
        partners=SqlPartnerDirectory(engine, reader=reader),
        exchanges=SqlExchangeStore(engine, keyring=keyring, reader=reader),
        breakers=SqlBreakerStore(engine, reader=reader),
        consents=SqlConsentStore(engine, reader=reader),
        audit=UnitAuditLog(transactions, SqlAuditTrail(reader=reader)),
        checkpointer=checkpointer,
    )


def _keyring(engine: Engine, settings: Settings) -> DataKeyring:
    """The data keys (ADR 0039): a missing or wrong key-encryption key stops start-up
    here, before anything is read; a database without a data key gets its first."""
    if not has_data_keys(engine):
        with SqlTransactions(engine, clock=utcnow).begin() as unit:
            add_first_key(unit, settings)
    return load_keyring(engine, settings)
