"""What the exchange use cases need from the outside world, as Protocols (bootstrap wires them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.ports import AuditLog
from payerbridge.consent.service import ConsentStore
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
from payerbridge.routing.model import Organization, Partner
from payerbridge.types import ExchangeId, PartnerId

__all__ = [
    "AuditLog",
    "BreakerStore",
    "ExchangePorts",
    "ExchangeStore",
    "PartnerClient",
    "PartnerDirectory",
    "ResourceWriter",
]

TransactionPart = Callable[[Connection], None]


class PartnerClient(Protocol):
    def member_match(
        self,
        partner: Partner,
        parameters: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> MemberMatchResult: ...

    def everything(
        self,
        partner: Partner,
        member_ref: str,
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> bytes: ...

    def refresh_credentials(self, partner: Partner) -> None: ...


class PartnerDirectory(Protocol):
    def get(self, partner_id: PartnerId) -> Partner | None: ...


class ExchangeStore(Protocol):
    def create(
        self,
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
        opt_in: Callable[[Connection], str] | None = None,
    ) -> Submission: ...

    def find_by_idempotency_key(self, client_id: str, key: str | None) -> Submission | None: ...

    def transition(
        self,
        exchange_id: ExchangeId,
        target: ExchangeState,
        *,
        at: datetime,
        actor: str,
        reason_code: str | None = None,
        detail: dict[str, Any] | None = None,
        updates: dict[str, Any] | None = None,
        also: TransactionPart | None = None,
        policy_version: str | None = None,
    ) -> None: ...

    def advance(
        self,
        exchange_id: ExchangeId,
        moves: Sequence[Move],
        *,
        at: datetime,
        actor: str,
        also: TransactionPart | None = None,
        policy_version: str | None = None,
        events: Sequence[AuditEvent] = (),
        expected: ExchangeState | None = None,
    ) -> None: ...

    def record_attempt(
        self,
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

    def get(self, exchange_id: ExchangeId) -> ExchangeRecord: ...

    def current(self, exchange_id: ExchangeId) -> ExchangeRecord: ...

    def ids_in_state(
        self, state: ExchangeState, *, updated_before: datetime
    ) -> list[ExchangeId]: ...
    def save_payload_with(
        self, exchange_id: ExchangeId, body: str, sha256: str, at: datetime
    ) -> TransactionPart: ...
    def payload(self, exchange_id: ExchangeId) -> str: ...
    def payload_sha256(self, exchange_id: ExchangeId) -> str | None: ...
    def dead_letter_with(self, letter: DeadLetter) -> TransactionPart: ...
    def dead_letter(self, exchange_id: ExchangeId) -> DeadLetter | None: ...
    def block_under_consent_with(
        self, consent_id: str, *, at: datetime, actor: str, reason_code: str, text: str
    ) -> Callable[[Connection], list[str]]: ...

    def mark_replayed_with(
        self, exchange_id: ExchangeId, *, by: str, key: str | None, at: datetime
    ) -> TransactionPart: ...


class ResourceWriter(Protocol):
    def write_with(
        self, resources: list[tuple[dict[str, Any], str | None]], *, source: str, at: datetime
    ) -> TransactionPart: ...


class BreakerStore(Protocol):
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


@dataclass(frozen=True)
class ExchangePorts:
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
