"""The exchange room's unit of work (ADR 0051): what every exchange use case takes.

A use case is ``use_case(command, uow)``. The unit carries the room's stores, bound to
the transaction in progress (``uow.exchanges.advance(...)`` writes in it), and the ports
that are not stores: the partner client, the clock, the retry policy, who we are. It is
reusable: each ``with uow:`` is one transaction, committed when the block ends and
rolled back if it raises, and a step that must commit before a partner call enters it
twice. Outside a ``with`` block the stores read the last commit and refuse to write.

Stores of rooms not yet converted (consents, the obligation ledger, the resource
writer) still take a unit: they are handed ``uow`` itself, which is one while a
transaction is in progress (its ``now``, ``new_id()``, ``record()``).

The edges build one unit per use case from the room's ``ExchangeWiring``
(``ExchangeUnit(wiring)``): a unit is cheap, and not shared between threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from payerbridge.audit.ports import AuditReader
from payerbridge.compliance.clocks import Clocks
from payerbridge.consent.ports import ConsentStore
from payerbridge.exchange.model import RetryPolicy
from payerbridge.exchange.ports import (
    AuditLog,
    BreakerStore,
    ExchangeLedger,
    ExchangeSearch,
    PartnerClient,
    PartnerDirectory,
    PullSchedules,
    ReceivedStore,
    ResourceWriter,
    Transactions,
    UnitOfWork,
)
from payerbridge.routing.model import Organization
from payerbridge.transactions import RoomUnit

__all__ = ["ExchangeUnit", "ExchangeWiring"]


@dataclass(frozen=True)
class ExchangeWiring:
    """The exchange room's adapters and settings, wired once (bootstrap): what each
    ``ExchangeUnit`` is built from."""

    transactions: Transactions
    exchanges: ExchangeLedger  # the store, with what the API and the operator read
    partners: PartnerDirectory
    client: PartnerClient
    writer: ResourceWriter
    received: ReceivedStore
    breakers: BreakerStore
    pulls: PullSchedules  # standing quarterly and run-off pulls (ADR 0040)
    consents: ConsentStore
    audit: AuditLog
    search: ExchangeSearch  # GET /exchanges and the console's search, on the reader
    audit_reader: AuditReader  # an exchange's timeline, from the audit trail
    us: Organization
    clock: Callable[[], datetime]
    new_id: Callable[[], str]
    random: Callable[[], float]  # uniform in [0, 1), for retry jitter
    retry_policy: RetryPolicy
    consent_zone: ZoneInfo  # where date-only opt-in periods are read
    clocks: Clocks | None = None  # the obligation rows kept (``exchange.clocks``)


class ExchangeUnit(RoomUnit):
    """One exchange use case's unit of work (see the module docstring)."""

    def __init__(self, wiring: ExchangeWiring) -> None:
        self.wiring = wiring
        self.transactions = wiring.transactions
        self._exchanges: ExchangeLedger | None = None
        self._received: ReceivedStore | None = None
        self._breakers: BreakerStore | None = None
        self._pulls: PullSchedules | None = None

    def _bind(self, transaction: UnitOfWork) -> None:
        self._exchanges = self.wiring.exchanges.within(transaction)
        self._received = self.wiring.received.within(transaction)
        self._breakers = self.wiring.breakers.within(transaction)
        self._pulls = self.wiring.pulls.within(transaction)

    def _unbind(self) -> None:
        self._exchanges = self._received = self._breakers = self._pulls = None

    def new_id(self) -> str:
        """A fresh id (the transaction's, when one is in progress)."""
        if self._transaction is not None:
            return self._transaction.new_id()
        return self.wiring.new_id()

    # The room's stores: bound to the transaction while one is in progress.

    @property
    def exchanges(self) -> ExchangeLedger:
        return self.wiring.exchanges if self._exchanges is None else self._exchanges

    @property
    def received(self) -> ReceivedStore:
        return self.wiring.received if self._received is None else self._received

    @property
    def breakers(self) -> BreakerStore:
        return self.wiring.breakers if self._breakers is None else self._breakers

    @property
    def pulls(self) -> PullSchedules:
        return self.wiring.pulls if self._pulls is None else self._pulls

    # The ports that are not the room's stores.

    @property
    def partners(self) -> PartnerDirectory:
        return self.wiring.partners

    @property
    def client(self) -> PartnerClient:
        return self.wiring.client

    @property
    def writer(self) -> ResourceWriter:
        return self.wiring.writer

    @property
    def consents(self) -> ConsentStore:
        return self.wiring.consents

    @property
    def audit(self) -> AuditLog:
        return self.wiring.audit

    @property
    def search(self) -> ExchangeSearch:
        return self.wiring.search

    @property
    def audit_reader(self) -> AuditReader:
        return self.wiring.audit_reader

    @property
    def us(self) -> Organization:
        return self.wiring.us

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.wiring.retry_policy

    @property
    def consent_zone(self) -> ZoneInfo:
        return self.wiring.consent_zone

    @property
    def clocks(self) -> Clocks | None:
        return self.wiring.clocks

    def clock(self) -> datetime:
        """The time now (``now`` is the transaction's start)."""
        return self.wiring.clock()

    def random(self) -> float:
        return self.wiring.random()
