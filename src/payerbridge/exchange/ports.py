"""What the exchange use cases need from the outside world, as Protocols (bootstrap wires them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self

from payerbridge.audit.ports import AuditLog
from payerbridge.exchange.model import (
    Attempt,
    BreakerState,
    DeadLetter,
    ExchangeCursor,
    ExchangeFilter,
    ExchangeRecord,
    ExchangeState,
    IdentifierKey,
    Move,
    NewExchange,
    PullKind,
    PullSchedule,
    PullStatus,
    Stamp,
    Submission,
)
from payerbridge.fhir.member_match import MemberMatchResult
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import RateLimit
from payerbridge.transactions import Transactions, UnitOfWork
from payerbridge.types import ClientId, ExchangeId, PartnerId

__all__ = [
    "AuditLog",
    "BreakerBoard",
    "BreakerStore",
    "ExchangeLedger",
    "ExchangeSearch",
    "ExchangeStore",
    "HeldFor",
    "PartnerClient",
    "PartnerDirectory",
    "ProbeAnswer",
    "PullSchedules",
    "ReceivedStore",
    "RecordRead",
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

    def everything(self, partner: Partner, read: RecordRead) -> Retrieved:
        """The member's record, every page of it followed to the end. A later page the
        partner cannot give now fails the call (to be retried), unless ``keep_partial``
        (the last attempt): then the pages before it, with an outcome naming it."""
        ...

    def search_record(self, partner: Partner, read: RecordRead, types: Sequence[str]) -> Retrieved:
        """The member's record read by searches (the Patient, then each of ``types`` by
        ``patient``, with their Provenance), every page followed: one searchset Bundle."""
        ...

    def refresh_credentials(self, partner: Partner) -> None: ...

    def probe(self, partner: Partner, *, timeout: float) -> ProbeAnswer:
        """One light call to the partner's FHIR endpoint (its CapabilityStatement, no
        token asked): whether it answers at all, for its breaker's probe."""
        ...

    def check_token(self, partner: Partner) -> ProbeAnswer | None:
        """A new token from the partner's token endpoint (kept for the next call), as a
        scheduled check: what it answered; None when we ask it for none."""
        ...


@dataclass(frozen=True)
class ProbeAnswer:
    """What a breaker's probe found: ``answered`` when the endpoint gave any answer but a
    5xx or 429 (a 401 or 404 is an endpoint that is up); the status, or the error's name
    when none came; how long it took."""

    answered: bool
    status: int | None
    error: str | None
    latency_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "answered": self.answered,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class RecordRead:
    """One read of a member's record at the old payer: the member there
    (``Patient/{id}``), under the step's Idempotency-Key, within ``timeout``;
    ``keep_partial`` on the last attempt (a page the partner cannot give ends the record
    there rather than failing the call); ``since``: only what changed after it."""

    member_ref: str
    idempotency_key: str
    timeout: float | None = None
    keep_partial: bool = False
    since: datetime | None = None


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
    """Exchanges and their history. Writes run in the unit of work the store is bound to
    (``within``; ADR 0051); their audit events are the caller's to record on it."""

    def within(self, unit: UnitOfWork) -> Self:
        """This store writing in ``unit`` (a store bound to none refuses to write)."""
        ...

    def create(self, new: NewExchange) -> None:
        """A new exchange in ``submitted``; another of the client's under the same
        Idempotency-Key makes the unit's commit raise StoreConflict."""
        ...

    def find_by_idempotency_key(
        self, client_id: ClientId, key: str | None
    ) -> Submission | None: ...

    def advance(
        self,
        exchange_id: ExchangeId,
        moves: Sequence[Move],
        stamp: Stamp,
        *,
        expected: ExchangeState | None = None,
    ) -> ExchangeState:
        """``moves`` one after another, each checked against the state machine; returns
        the state they started from (``expected``, when given: IllegalTransition if the
        exchange is no longer in it)."""
        ...

    def record_attempt(
        self, exchange_id: ExchangeId, attempt: Attempt, *, at: datetime
    ) -> None: ...

    def block_under_consent(
        self, consent_id: str, move: Move, *, at: datetime, actor: str
    ) -> list[tuple[ExchangeId, ExchangeState]]:
        """``move`` (to ``blocked``) for every unfinished exchange running under the
        consent; each one's id with the state it was blocked from."""
        ...

    def save_payload(
        self, exchange_id: ExchangeId, body: str, sha256: str, at: datetime
    ) -> None: ...

    def file_dead_letter(self, letter: DeadLetter) -> None: ...

    def mark_replayed(
        self, exchange_id: ExchangeId, *, by: str, key: str | None, at: datetime
    ) -> None: ...

    def get(self, exchange_id: ExchangeId) -> ExchangeRecord: ...

    def current(self, exchange_id: ExchangeId) -> ExchangeRecord: ...

    def ids_in_state(
        self,
        state: ExchangeState,
        *,
        updated_before: datetime,
        partner_id: PartnerId | None = None,
    ) -> list[ExchangeId]:
        """The exchanges in ``state`` last moved before ``updated_before`` (of one
        partner's, with ``partner_id``), oldest first."""
        ...

    def payload(self, exchange_id: ExchangeId) -> str: ...

    def payload_sha256(self, exchange_id: ExchangeId) -> str | None: ...

    def dead_letter(self, exchange_id: ExchangeId) -> DeadLetter | None: ...

    def compartments_held(
        self, client_id: ClientId, member_key: str, *, other_than: str
    ) -> list[str]:
        """Our Patient ids of the client's member ``member_key`` that exchanges with other
        old payers stored (``other_than``: this exchange's own)."""
        ...


@dataclass(frozen=True)
class HeldFor:
    """One old payer's data about a client's member, as held: what every exchange of the
    client for the member (``member_key``) with that partner stored, and, compared within
    the member's compartments, what the client's onboardings with it stored there (ADR
    0054: removal and comparison are per source, since every source shares the member's
    compartment; an onboarding removes nothing, so removal is the exchanges' alone)."""

    client_id: str
    member_key: str
    partner_id: str


class ReceivedStore(Protocol):
    """Received data as held, for reconciling an answer with it (``exchange.received``).
    ``held_refs`` and ``remove`` run in the unit of work the store is bound to; the
    others read before it begins (a unit's thread gets no second connection)."""

    def within(self, unit: UnitOfWork) -> Self:
        """This store reading and writing in ``unit``."""
        ...

    def held_refs(self, held_for: HeldFor) -> list[str]:
        """The refs of what that old payer's exchanges for the member stored, in the unit."""
        ...

    def remove(self, refs: Sequence[str]) -> None: ...

    def with_identifiers(
        self, patient_ids: Sequence[str], keys: Sequence[IdentifierKey], *, other_than: HeldFor
    ) -> list[dict[str, Any]]:
        """The resources of the compartments that carry one of the business identifiers,
        but those ``other_than`` stored (the answer's own source)."""
        ...

    def plan_patients(self, member_id: str) -> list[dict[str, Any]]:
        """The plan's own Patients (not received) carrying an identifier of this value."""
        ...

    def source_patients(
        self, patient_ids: Sequence[str], *, other_than: HeldFor
    ) -> list[tuple[str, dict[str, Any]]]:
        """Received Patients in the compartments, by the partner that sent them, but
        those ``other_than`` stored."""
        ...


class ResourceWriter(Protocol):
    def write(
        self,
        unit: UnitOfWork,
        resources: list[tuple[dict[str, Any], str | None]],
        *,
        source: str,
        at: datetime,
    ) -> None: ...


class PullSchedules(Protocol):
    """Standing pulls (ADR 0040). Writes run in the unit of work the store is bound to."""

    def within(self, unit: UnitOfWork) -> Self:
        """This store writing in ``unit``."""
        ...

    def add(self, schedule: PullSchedule, request: dict[str, Any]) -> None: ...

    def get(self, schedule_id: str) -> PullSchedule: ...

    def all(
        self,
        *,
        status: PullStatus | None = None,
        client_id: str | None = None,
        limit: int | None = None,
    ) -> list[PullSchedule]:
        """The schedules, the oldest first: ``client_id``'s only, at most ``limit``."""
        ...

    def due(self, now: datetime) -> list[PullSchedule]: ...

    def page(
        self,
        *,
        status: PullStatus | None = None,
        kind: PullKind | None = None,
        offset: int = 0,
        count: int = 50,
    ) -> tuple[int, list[PullSchedule]]:
        """How many schedules there are of ``status`` and ``kind``, and ``count`` of them
        from ``offset``: the next due first, then those due no more, the newest first."""
        ...

    def lateness_of(self, schedule_ids: Sequence[str], now: datetime) -> dict[str, str]:
        """Of these schedules (a page's, in one read), those ``overdue`` at ``now``: active,
        more than a day past due, and not waiting on their last pull (as
        ``payerbridge_pull_schedules_overdue`` counts them); and those ``pulling``: as late,
        but their last pull still runs or waits for a reviewer. The others are left out."""
        ...

    def request(self, schedule_id: str) -> dict[str, Any] | None: ...

    def update(self, schedule_id: str, **values: Any) -> None:
        """Set columns of an active schedule; ``status=stopped`` also cuts its request."""
        ...


class BreakerStore(Protocol):
    """Each endpoint's breaker and each partner's rate, shared by every worker. Writes run
    in the unit of work the store is bound to (``within``)."""

    def within(self, unit: UnitOfWork) -> Self:
        """This store writing in ``unit``."""
        ...

    def get(self, endpoint: str) -> BreakerState:
        """The endpoint's breaker as last recorded (closed if never)."""
        ...

    def lock(self, endpoint: str, partner_id: PartnerId, *, at: datetime) -> BreakerState:
        """The endpoint's breaker, held against every other writer until the unit ends
        (recorded closed at ``at`` if it never was)."""
        ...

    def save(
        self, endpoint: str, partner_id: PartnerId, state: BreakerState, *, at: datetime
    ) -> None:
        """The endpoint's breaker as ``state`` (``lock`` it in the unit first)."""
        ...

    def admit_rate(
        self, partner_id: PartnerId, limit: RateLimit, *, now: datetime
    ) -> datetime | None:
        """Take the partner's next turn under its rate limit (every worker's calls
        count): None when a call may go now, else when one may."""
        ...

    def unhealthy(self) -> list[tuple[str, PartnerId, BreakerState]]:
        """Every endpoint whose breaker is not closed, with its partner: the ones a probe
        may be due for."""
        ...


class ExchangeLedger(ExchangeStore, Protocol):
    """The exchange store with what the API and the operator read."""

    def waiting_on_partner_reviewers(
        self, *, client_id: ClientId | None, limit: int, offset: int
    ) -> tuple[int, list[ExchangeRecord]]:
        """(total, one page), the longest waiting first, of ``client_id``'s exchanges
        (everyone's when None) waiting on an old payer's reviewer (``review.py``)."""
        ...

    def counts_by_state(self) -> dict[str, int]: ...


class BreakerBoard(BreakerStore, Protocol):
    """The breakers with what the API shows."""

    def get(self, endpoint: str) -> BreakerState: ...

    def all(self) -> dict[str, BreakerState]: ...


class ExchangeSearch(Protocol):
    """The indexed reads a search runs (``store/exchange_search.py``)."""

    def find(
        self, where: ExchangeFilter, *, limit: int, after: ExchangeCursor | None
    ) -> list[ExchangeRecord]:
        """Up to ``limit`` exchanges newest first by (created_at, id), after ``after``."""
        ...

    def count(self, where: ExchangeFilter) -> int: ...

    def client_ids(self) -> Sequence[ClientId]:
        """Every client that has submitted an exchange."""
        ...
