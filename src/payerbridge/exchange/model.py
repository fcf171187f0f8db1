"""The exchange request and its state machine (pure: no I/O, no clock).

    submitted → validated → consent_verified → route_selected → member_matched
              → retrieving → received → normalized → completed | partial | conflict

``partial``: the data was stored but the answer lacked something (a source the old payer
named, a page, resources we could not take); ``conflict``: two sources disagree about the
same thing (both kept). Either may be asked again (``validated``, as a replay) or given
up on (``failed``). Any working state may also stop in ``failed`` (terminal, with a reason code),
``blocked`` (consent, policy) or ``dead_lettered`` (retry budget spent). A
dead-lettered exchange can be replayed: it goes back to ``validated`` and runs
again from the consent check. ``route_selected`` may stop in ``manual_review``
when the partner's answer about the member's identity needs a person.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import IllegalTransition
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.members import CoverageCard, MemberDemographics
from payerbridge.types import ClientId, ExchangeId, PartnerId

__all__ = [
    "ASKABLE_AGAIN",
    "CLOSED",
    "BreakerState",
    "BreakerStatus",
    "IdentifierKey",
    "PullKind",
    "PullSchedule",
    "PullStatus",
    "RetryPolicy",
    "DATA_ENDS",
    "ExchangeStart",
    "Attempt",
    "STOPPED_STATES",
    "Stamp",
    "TERMINAL_STATES",
    "ConsentGrant",
    "DateRange",
    "ExchangeCursor",
    "ExchangeFilter",
    "DeadLetter",
    "ExchangeReason",
    "ExchangeRecord",
    "ExchangeRequest",
    "ExchangeState",
    "NewExchange",
    "Move",
    "Submission",
    "Transition",
    "as_seen",
    "attempt_event",
    "check_transition",
    "transition_event",
    "transition_events",
]


class ExchangeState(StrEnum):
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    CONSENT_VERIFIED = "consent_verified"
    ROUTE_SELECTED = "route_selected"
    MEMBER_MATCHED = "member_matched"
    RETRIEVING = "retrieving"
    RECEIVED = "received"
    NORMALIZED = "normalized"
    COMPLETED = "completed"
    PARTIAL = "partial"
    CONFLICT = "conflict"
    BLOCKED = "blocked"
    MANUAL_REVIEW = "manual_review"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


S = ExchangeState


@dataclass(frozen=True)
class Move:
    """One state change to record: the target, why, what it carries for the audit trail
    and which columns of the exchange it sets."""

    target: ExchangeState
    reason_code: str | None = None
    detail: dict[str, Any] | None = None
    updates: dict[str, Any] | None = None


_HAPPY_PATH = (
    S.SUBMITTED,
    S.VALIDATED,
    S.CONSENT_VERIFIED,
    S.ROUTE_SELECTED,
    S.MEMBER_MATCHED,
    S.RETRIEVING,
    S.RECEIVED,
    S.NORMALIZED,
    S.COMPLETED,
)
TERMINAL_STATES = frozenset({S.COMPLETED, S.FAILED})
# The ends of an exchange whose data was stored, and states from which it may be asked again.
DATA_ENDS = frozenset({S.COMPLETED, S.PARTIAL, S.CONFLICT})
ASKABLE_AGAIN = frozenset({S.DEAD_LETTERED, S.PARTIAL, S.CONFLICT})
# States in which no workflow works on the exchange; each waits for nothing or a person.
STOPPED_STATES = TERMINAL_STATES | {
    S.BLOCKED,
    S.MANUAL_REVIEW,
    S.DEAD_LETTERED,
    S.PARTIAL,
    S.CONFLICT,
}

_ALLOWED: dict[ExchangeState, frozenset[ExchangeState]] = {
    state: frozenset({following, S.FAILED, S.DEAD_LETTERED, S.BLOCKED})
    for state, following in zip(_HAPPY_PATH, _HAPPY_PATH[1:], strict=False)
}
_ALLOWED[S.ROUTE_SELECTED] = _ALLOWED[S.ROUTE_SELECTED] | {S.MANUAL_REVIEW}
# Waiting on a person: ours (identity changed on replay) or the old payer's reviewer,
# asked again until it decides; a consent revoked or a partner gone meanwhile stops it.
_ALLOWED[S.MANUAL_REVIEW] = frozenset({S.MEMBER_MATCHED, S.FAILED, S.BLOCKED, S.DEAD_LETTERED})
_ALLOWED[S.BLOCKED] = frozenset({S.FAILED})
_ALLOWED[S.NORMALIZED] = _ALLOWED[S.NORMALIZED] | {S.PARTIAL, S.CONFLICT}
_ALLOWED[S.DEAD_LETTERED] = frozenset({S.VALIDATED, S.FAILED})  # replay, or give up
# Asked again (a replay: consent and identity checked again), or given up on; a
# revocation does not block what was already received.
_ALLOWED[S.PARTIAL] = frozenset({S.VALIDATED, S.FAILED})
_ALLOWED[S.CONFLICT] = frozenset({S.VALIDATED, S.FAILED})
_ALLOWED[S.COMPLETED] = frozenset()
_ALLOWED[S.FAILED] = frozenset()


def check_transition(current: ExchangeState | None, target: ExchangeState) -> None:
    """Raise ``IllegalTransition`` unless ``current → target`` is an edge of the machine.

    ``current`` is None only for the creation of an exchange, which must start ``submitted``.
    """
    if current is None:
        if target is not S.SUBMITTED:
            raise IllegalTransition(f"an exchange starts in 'submitted', not '{target}'")
        return
    if target not in _ALLOWED[current]:
        raise IllegalTransition(f"an exchange cannot go from '{current}' to '{target}'")


@dataclass(frozen=True)
class ConsentGrant:
    """The member's opt-in, as captured by the new payer."""

    policy: str  # "regular" (non-sensitive data only) or "sensitive" (all data)
    start: date
    end: date
    source_reference: str


@dataclass(frozen=True)
class ExchangeRequest:
    old_payer: PartnerId
    member: MemberDemographics
    old_coverage: CoverageCard
    new_coverage: CoverageCard
    consent: ConsentGrant | None  # the opt-in, captured with the request
    consent_id: str | None = None  # or an opt-in captured before (POST /consents)
    since: datetime | None = None  # ask only for what changed after this (``_since``)

    @property
    def member_id(self) -> str:
        """Our member id: the new card's member id, else its subscriber id."""
        return self.new_coverage.member_id or self.new_coverage.subscriber_id or ""


@dataclass(frozen=True)
class DeadLetter:
    """An exchange whose retry budget ran out, with what an operator needs to replay it."""

    exchange_id: ExchangeId
    step: str
    reason_code: str
    last_error: str | None
    attempts: int
    policy_snapshot: dict[str, Any]
    last_route: dict[str, Any] | None
    request_sha256: str
    payload_sha256: str | None
    dead_lettered_at: datetime
    replayed_at: datetime | None = None
    replayed_by: str | None = None
    replay_key: str | None = None


@dataclass(frozen=True)
class ExchangeStart:
    """An exchange's workflow run for the edge to enqueue: the exchange, its old payer
    (the queue's partition) and which run (0: its first; n: its n-th replay)."""

    exchange_id: ExchangeId
    partner_id: PartnerId
    replay_count: int = 0


@dataclass(frozen=True)
class Stamp:
    """What every transition of one commit is stamped with: when, by whom, under which
    retry policy's version and for which request (None: none)."""

    at: datetime
    actor: str
    policy_version: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class NewExchange:
    """An exchange as submitted, for the store to record in ``submitted``, moved there by
    ``client_id`` at ``at``: its request as sent and its digest, the Idempotency-Key it
    came under, its deadline, the retry policy's version and the opt-in it runs under;
    ``request_id`` and ``member_key`` are what a search finds it by; ``since``: it asks
    only for what changed after that instant."""

    exchange_id: ExchangeId
    partner_id: PartnerId
    client_id: ClientId
    request: dict[str, Any]
    request_hash: str
    at: datetime
    idempotency_key: str | None = None
    deadline_at: datetime | None = None
    policy_version: str | None = None
    consent_id: str | None = None
    request_id: str | None = None
    member_key: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Submission:
    """The exchange a (client, Idempotency-Key) names; ``created`` on its first use."""

    exchange_id: ExchangeId
    created: bool
    request_hash: str


@dataclass(frozen=True)
class Attempt:
    """A step's partner call that brought no answer to use (no state change): the calls
    the step has made, when the next is due (None: the step gives up), when the step
    began, why, and what its audit event says besides."""

    step: str
    attempts: int
    next_attempt_at: datetime | None
    step_started_at: datetime
    last_error: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Transition:
    """One recorded state change of an exchange."""

    seq: int
    from_state: str | None
    to_state: str
    at: datetime
    actor: str
    reason_code: str | None
    detail: dict[str, Any] | None
    policy_version: str | None = None


@dataclass(frozen=True)
class ExchangeRecord:
    """An exchange as stored: its request, where it stands, and its transitions."""

    id: ExchangeId
    state: ExchangeState
    partner_id: PartnerId
    client_id: ClientId
    request: dict[str, Any]
    request_hash: str
    matched_member_ref: str | None
    member_identifier: str | None
    imported_patient_id: str | None
    resource_count: int | None
    error_code: str | None
    error_text: str | None
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None
    current_step: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    deadline_at: datetime | None
    replay_count: int
    consent_id: str | None = None
    step_started_at: datetime | None = None
    request_shape: str | None = None  # the HRex version the route chose to speak
    data_path: str | None = None  # how the route chose to read the record (``route``)
    member_key: str | None = None  # whom its data is held for (``reconcile.member_key_of``)
    request_id: str | None = None  # the request that submitted it (its X-Request-ID)
    since: datetime | None = None  # asks only for what changed after this (``_since``)
    transitions: tuple[Transition, ...] = ()

    @property
    def last_received_at(self) -> datetime | None:
        """When its data was last received (a replay receives again); None without the
        history, as in lists, or before any data came."""
        for transition in reversed(self.transitions):
            if transition.to_state == S.RECEIVED.value:
                return transition.at
        return None


def transition_event(
    exchange_id: ExchangeId, current: ExchangeState | None, move: Move, stamp: Stamp
) -> AuditEvent:
    """The audit event that commits with a transition: where from, where to and why."""
    return AuditEvent(
        at=stamp.at,
        actor=stamp.actor,
        action="exchange.transition",
        entity_type="Exchange",
        entity_id=exchange_id,
        outcome=move.target.value,
        request_id=stamp.request_id,
        detail={
            "from": current.value if current else None,
            "to": move.target.value,
            "reason_code": move.reason_code,
            "policy_version": stamp.policy_version,
            **(move.detail or {}),
        },
    )


def transition_events(
    exchange_id: ExchangeId, start: ExchangeState | None, moves: Sequence[Move], stamp: Stamp
) -> list[AuditEvent]:
    """The audit events of ``moves`` made one after another from ``start``."""
    events, current = [], start
    for move in moves:
        events.append(transition_event(exchange_id, current, move, stamp))
        current = move.target
    return events


def attempt_event(exchange_id: ExchangeId, attempt: Attempt, *, at: datetime) -> AuditEvent:
    """The audit event that commits with an attempt: retried, parked (a call held back,
    which spent no attempt), or given up."""
    if attempt.next_attempt_at is None:
        outcome = "gave-up"
    else:
        outcome = "parked" if attempt.detail.get("parked") else "retry"
    return AuditEvent(
        at=at,
        actor="payerbridge",
        action="exchange.attempt",
        entity_type="Exchange",
        entity_id=exchange_id,
        outcome=outcome,
        request_id=None,
        detail={"step": attempt.step, "attempt": attempt.attempts, **attempt.detail},
    )


# The types the room's stores keep (ADR 0051: a store imports the ports and the model).

IdentifierKey = tuple[str, str, str]  # resource type, identifier system, identifier value


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerState:
    """``open_until``: when an open breaker's next probe is due; ``probe_until``: the
    lease of the probe a half-open breaker waits on."""

    status: BreakerStatus = BreakerStatus.CLOSED
    consecutive_failures: int = 0
    open_until: datetime | None = None
    probe_until: datetime | None = None

    @property
    def next_probe_at(self) -> datetime | None:
        """When the endpoint may be probed next (None: closed, nothing to probe)."""
        if self.status is BreakerStatus.OPEN:
            return self.open_until
        if self.status is BreakerStatus.HALF_OPEN:
            return self.probe_until
        return None


CLOSED = BreakerState()


def as_seen(state: BreakerState, now: datetime) -> BreakerState:
    """The breaker as it stands at ``now``: open only while it holds calls back; past its
    ``open_until`` it waits for its probe, which is half-open."""
    due = state.next_probe_at
    if state.status is BreakerStatus.OPEN and due is not None and now >= due:
        return replace(state, status=BreakerStatus.HALF_OPEN, probe_until=None)
    return state


@dataclass(frozen=True)
class RetryPolicy:
    """Time budgets, backoff and the breaker of outbound steps; versioned by its own
    content. ``None`` limits are off: no attempt limit, no step budget, and the
    exchange's deadline from the rule's clocks (``exchange.budgets``)."""

    max_attempts: int | None = None
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    # Past ``max_delay`` the wait grows with the time the step has waited (a tenth of it
    # by default), up to ``longest_delay``: a partner down for a day is not asked twice
    # a minute all day, and one down for a minute is asked again within seconds.
    longest_delay_seconds: float = 3600.0
    backoff_growth: float = 0.1
    step_budget_seconds: float | None = None
    exchange_budget_seconds: float | None = None
    call_timeout_seconds: float = 30.0
    # The least time before the deadline a retry is still worth making (a call's timeout
    # is cut to what is left): so the last try is made, not skipped.
    last_call_seconds: float = 1.0
    breaker_failure_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0  # the probe interval of an open breaker
    # A later page of the record the partner cannot give is retried this many times,
    # then what was read is kept (the exchange ends partial, naming the page).
    partial_after_attempts: int = 6
    # Waiting on the old payer's reviewer: the first wait, and the most we wait in all.
    review_poll_seconds: float = 300.0
    review_wait_seconds: float = 72 * 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None: no limit)")
        delays = (self.base_delay_seconds, self.max_delay_seconds, self.longest_delay_seconds)
        if min(*delays, self.backoff_growth) < 0:
            raise ValueError("retry delays cannot be negative")
        budgets = (self.step_budget_seconds, self.exchange_budget_seconds)
        if any(b is not None and b <= 0 for b in budgets) or self.breaker_cooldown_seconds <= 0:
            raise ValueError("time budgets and the probe interval must be positive")
        if self.last_call_seconds < 0:
            raise ValueError("last_call_seconds cannot be negative")
        if self.breaker_failure_threshold < 1 or self.partial_after_attempts < 1:
            raise ValueError("breaker_failure_threshold must be at least 1")

    @functools.cached_property  # recorded with every transition: hashed once
    def version(self) -> str:
        """``retry/<hash>``: recorded with every transition so a history says which
        limits were in force."""
        text = ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))
        return "retry/" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def snapshot(self) -> dict[str, float | int | str | None]:
        return {**asdict(self), "version": self.version}


class PullKind(StrEnum):
    FIRST = "first"  # the first request: coverage started and the member opted in
    QUARTERLY = "quarterly"  # while coverage is concurrent
    RUN_OFF = "run-off"  # from coverage end until the opt-in's period ends


class PullStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PullSchedule:
    """A standing pull as stored (ids and times; its request is kept apart, sealed)."""

    id: str
    kind: PullKind
    status: PullStatus
    partner_id: PartnerId
    client_id: ClientId
    consent_id: str
    member_key: str | None
    source_exchange_id: ExchangeId | None  # None: the first pull made it (``first``)
    last_exchange_id: ExchangeId | None
    last_received_at: datetime | None
    next_due_at: datetime | None
    coverage_end: datetime | None
    pulls: int
    stop_reason: str | None
    awaiting_pull: bool  # its last pull started and waits to be looked at
    created_by: str
    created_at: datetime
    updated_at: datetime


# An exchange search as the store runs it (``operations.search`` reads what was asked).
@dataclass(frozen=True)
class DateRange:
    """Instants from ``start`` (inclusive) to ``end`` (exclusive); None: unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.start is None and self.end is None

    def narrowed(self, other: DateRange) -> DateRange:
        """Both ranges at once (``created=ge...&created=lt...``)."""
        starts = [d for d in (self.start, other.start) if d is not None]
        ends = [d for d in (self.end, other.end) if d is not None]
        return DateRange(max(starts) if starts else None, min(ends) if ends else None)


@dataclass(frozen=True)
class ExchangeCursor:
    """Where a page ended: the last exchange shown. Opaque on the wire."""

    created_at: datetime
    exchange_id: ExchangeId

    @classmethod
    def after(cls, record: ExchangeRecord) -> ExchangeCursor:
        """The cursor of a page whose last exchange is ``record``."""
        return cls(_utc(record.created_at), record.id)

    def encode(self) -> str:
        at = _utc(self.created_at).isoformat()
        raw = f"{at}|{self.exchange_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> ExchangeCursor:
        """The cursor ``encode()`` wrote; ValueError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, exchange_id = raw.split("|", 1)
            created_at = datetime.fromisoformat(at)
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise ValueError("not a cursor this server wrote") from error
        if created_at.tzinfo is None or not exchange_id or len(exchange_id) > 64:
            raise ValueError("not a cursor this server wrote")
        return cls(created_at, ExchangeId(exchange_id))


@dataclass(frozen=True)
class ExchangeFilter:
    """What the store runs: the query with tenancy applied and members as their keys
    (``member_keys`` None: any member; empty: none can match)."""

    client_id: ClientId | None = None
    member_keys: frozenset[str] | None = None
    partner_id: PartnerId | None = None
    request_id: str | None = None
    states: frozenset[ExchangeState] = frozenset()
    reason_codes: frozenset[str] = frozenset()
    created: DateRange = field(default_factory=DateRange)
    updated: DateRange = field(default_factory=DateRange)


def _utc(value: datetime) -> datetime:
    """SQLite gives naive UTC datetimes, PostgreSQL aware ones: one form for cursors."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
