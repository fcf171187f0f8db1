"""What the exchange use cases need from the outside world, as Protocols (bootstrap wires them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from payerbridge.audit.ports import AuditLog
from payerbridge.consent.ports import ConsentStore
from payerbridge.exchange.breaker import Admission, BreakerState
from payerbridge.exchange.model import (
    DeadLetter,
    ExchangeRecord,
    ExchangeState,
    Move,
    Submission,
)
from payerbridge.exchange.retry import RetryPolicy
from payerbridge.fhir.member_match import MemberMatchResult
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import Organization, Partner
from payerbridge.routing.operations import RateLimit
from payerbridge.transactions import Transactions, UnitOfWork
from payerbridge.types import ExchangeId, PartnerId

__all__ = [
    "AuditLog",
    "BreakerBoard",
    "BreakerStore",
    "ExchangeLedger",
    "ExchangePorts",
    "ExchangeStore",
    "PartnerClient",
    "PartnerDirectory",
    "ResourceWriter",
    "Retrieved",
    "Transactions",
    "UnitOfWork",
]


class PartnerClient(Protocol):
    def member_match(
        self,
        partner: Partner,
        parameters: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> MemberMatchResult: ...

    def find_member(
        self,
        partner: Partner,
        identifier: tuple[str | None, str],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> str:
        """``Patient/{id}`` of the one Patient ``Patient?identifier=`` finds there."""
        ...

    def everything(
        self,
        partner: Partner,
        member_ref: str,
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> Retrieved:
        """The member's record, every page of it followed to the end."""
        ...

    def search_record(
        self,
        partner: Partner,
        member_ref: str,
        types: Sequence[str],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> Retrieved:
        """The member's record read by searches (the Patient, then each of ``types`` by
        ``patient``, with their Provenance), every page followed: one searchset Bundle."""
        ...

    def refresh_credentials(self, partner: Partner) -> None: ...


@dataclass(frozen=True)
class Retrieved:
    """What ``$everything`` brought: one searchset Bundle of every page's entries, and
    how many entries each page held."""

    content: bytes
    page_sizes: tuple[int, ...]


class PartnerDirectory(Protocol):
    def get(self, partner_id: PartnerId) -> Partner | None: ...

    def capabilities(self, partner_id: PartnerId) -> Capabilities | None:
        """What the partner's CapabilityStatement said when last read (routing)."""
        ...


class ExchangeStore(Protocol):
    """Exchanges and their history. Writes run in the caller's unit of work."""

    def create(
        self,
        unit: UnitOfWork,
        *,
        exchange_id: ExchangeId,
        partner_id: PartnerId,
        client_id: str,
        request: dict[str, Any],
        request_hash: str,
        at: datetime,
        request_id: str | None,
        idempotency_key: str | None = None,
        deadline_at: datetime | None = None,
        policy_version: str | None = None,
        consent_id: str | None = None,
    ) -> None: ...

    def find_by_idempotency_key(self, client_id: str, key: str | None) -> Submission | None: ...

    def advance(
        self,
        unit: UnitOfWork,
        exchange_id: ExchangeId,
        moves: Sequence[Move],
        *,
        at: datetime,
        actor: str,
        policy_version: str | None = None,
        expected: ExchangeState | None = None,
    ) -> None: ...

    def record_attempt(
        self,
        unit: UnitOfWork,
        exchange_id: ExchangeId,
        *,
        step: str,
        attempts: int,
        next_attempt_at: datetime | None,
        step_started_at: datetime,
        last_error: str,
        at: datetime,
        detail: dict[str, Any],
    ) -> None: ...

    def block_under_consent(
        self,
        unit: UnitOfWork,
        consent_id: str,
        *,
        at: datetime,
        actor: str,
        reason_code: str,
        text: str,
    ) -> list[ExchangeId]: ...

    def save_payload(
        self, unit: UnitOfWork, exchange_id: ExchangeId, body: str, sha256: str, at: datetime
    ) -> None: ...

    def file_dead_letter(self, unit: UnitOfWork, letter: DeadLetter) -> None: ...

    def mark_replayed(
        self, unit: UnitOfWork, exchange_id: ExchangeId, *, by: str, key: str | None, at: datetime
    ) -> None: ...

    def get(self, exchange_id: ExchangeId) -> ExchangeRecord: ...

    def current(self, exchange_id: ExchangeId) -> ExchangeRecord: ...

    def ids_in_state(
        self, state: ExchangeState, *, updated_before: datetime
    ) -> list[ExchangeId]: ...

    def payload(self, exchange_id: ExchangeId) -> str: ...

    def payload_sha256(self, exchange_id: ExchangeId) -> str | None: ...

    def dead_letter(self, exchange_id: ExchangeId) -> DeadLetter | None: ...


class ResourceWriter(Protocol):
    def write(
        self,
        unit: UnitOfWork,
        resources: list[tuple[dict[str, Any], str | None]],
        *,
        source: str,
        at: datetime,
    ) -> None: ...


class BreakerStore(Protocol):
    def get(self, endpoint: str) -> BreakerState:
        """The endpoint's breaker as last recorded (closed if never)."""
        ...

    def admit_rate(
        self, partner_id: PartnerId, limit: RateLimit, *, now: datetime
    ) -> datetime | None:
        """Take the partner's next turn under its rate limit (every worker's calls
        count): None when a call may go now, else when one may."""
        ...

    def admit(
        self, endpoint: str, partner_id: PartnerId, *, now: datetime, cooldown: timedelta
    ) -> Admission: ...

    def record(
        self,
        endpoint: str,
        partner_id: PartnerId,
        *,
        succeeded: bool,
        now: datetime,
        threshold: int,
        cooldown: timedelta,
        seen: BreakerState | None = None,
    ) -> BreakerState: ...


class ExchangeLedger(ExchangeStore, Protocol):
    """The exchange store with what the API and the operator read."""

    def list_page(
        self, *, client_id: str | None, state: ExchangeState | None, limit: int, offset: int
    ) -> tuple[int, list[ExchangeRecord]]:
        """One page, newest first, of ``client_id``'s exchanges (everyone's when None)."""
        ...

    def counts_by_state(self) -> dict[str, int]: ...


class BreakerBoard(BreakerStore, Protocol):
    """The breakers with what the API shows."""

    def get(self, endpoint: str) -> BreakerState: ...

    def all(self) -> dict[str, BreakerState]: ...


@dataclass(frozen=True)
class ExchangePorts:
    transactions: Transactions
    exchanges: ExchangeStore
    partners: PartnerDirectory
    client: PartnerClient
    writer: ResourceWriter
    breakers: BreakerStore
    consents: ConsentStore
    audit: AuditLog
    us: Organization
    clock: Callable[[], datetime]
    new_id: Callable[[], str]
    random: Callable[[], float]  # uniform in [0, 1), for retry jitter
    retry_policy: RetryPolicy
    consent_zone: ZoneInfo  # where date-only opt-in periods are read
