"""Standing pulls: schedule one from a member's successful exchange, list and cancel
them, and start those due as exchanges asked ``since`` the last successful pull's data
was received, the opt-in decided again at each run (issue 54, ADR 0040).

A schedule keeps the request its pulls send (sealed, and cut when it stops), since the
purge minimises an ended exchange's request (ADR 0038). A pull is submitted like any
exchange (``submit_exchange``) under an Idempotency-Key of its own, and enqueued by the
upkeep sweep as any exchange recorded but not yet enqueued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import DenyReason, Requester
from payerbridge.consent.service import authorize_request
from payerbridge.errors import ConsentDenied, InvalidInput, Issue, NotFound
from payerbridge.exchange.model import DATA_ENDS, STOPPED_STATES, ExchangeRecord
from payerbridge.exchange.moves import SYSTEM_ACTOR
from payerbridge.exchange.ports import ExchangePorts
from payerbridge.exchange.pull_model import (
    PullKind,
    PullSchedule,
    PullStatus,
    first_due,
    next_due,
    pull_key,
)
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.submission import ExchangeSubmission, submit_exchange
from payerbridge.timestamps import utc_iso
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, ExchangeId

__all__ = [
    "PullSchedules",
    "PullsRun",
    "cancel_pull",
    "pull_schedules_public",
    "schedule_pull",
    "start_due_pulls",
]

logger = logging.getLogger(__name__)
HOP = "scheduled-pull"


class PullSchedules(Protocol):
    def add(self, unit: UnitOfWork, schedule: PullSchedule, request: dict[str, Any]) -> None: ...

    def get(self, schedule_id: str) -> PullSchedule: ...

    def all(self, *, status: PullStatus | None = None) -> list[PullSchedule]: ...

    def due(self, now: datetime) -> list[PullSchedule]: ...

    def request(self, schedule_id: str) -> dict[str, Any] | None: ...

    def update(self, unit: UnitOfWork, schedule_id: str, **values: Any) -> None:
        """Set columns of an active schedule; ``status=stopped`` also cuts its request."""
        ...


@dataclass(frozen=True)
class PullsRun:
    """What one run of the due pulls did: exchanges started, schedules stopped (with
    their reasons) and schedules whose last pull is still running."""

    started: tuple[ExchangeId, ...] = ()
    stopped: tuple[tuple[str, str], ...] = ()
    waiting: int = 0


def _received_at(record: ExchangeRecord) -> datetime | None:
    """When an exchange that stored its data received it (None: it stored none)."""
    return record.last_received_at if record.state in DATA_ENDS else None


def _consent_reason(
    ports: ExchangePorts, consent_id: str, partner_npi: str, now: datetime
) -> tuple[str | None, str, AuditEvent]:
    """The opt-in decided now for a pull: (None, ...) when it permits, else its reason."""
    stored = ports.consents.get(consent_id)
    disclosure = authorize_request(
        stored,
        consent_id=consent_id,
        partner_npi=partner_npi,
        us=Requester(ClientId(SYSTEM_ACTOR), ports.us.npi),
        at=now,
        hop=HOP,
    )
    decision = disclosure.decision
    if decision.permitted:
        return None, decision.text, disclosure.event
    return (decision.reason or DenyReason.NO_CONSENT).value, decision.text, disclosure.event


def schedule_pull(
    ports: ExchangePorts,
    schedules: PullSchedules,
    exchange_id: ExchangeId,
    kind: PullKind,
    *,
    actor: str,
    coverage_end: datetime | None = None,
) -> PullSchedule:
    """A standing pull of the member an exchange moved, from that exchange on. Refused
    (InvalidInput) unless the exchange stored its data and still holds its request, and
    a run-off without ``coverage_end``; refused (ConsentDenied, with the consent's
    reason) unless the member's opt-in permits asking the old payer now."""
    record = ports.exchanges.get(exchange_id)
    received_at = _received_at(record)
    problems = []
    if received_at is None:
        problems.append(
            Issue(
                f"exchange {exchange_id} stored no data ({record.state.value}): "
                "a pull starts from a successful exchange",
                "exchange",
                "value",
            )
        )
    if "member" not in record.request:
        problems.append(
            Issue(
                f"exchange {exchange_id}'s request was minimised: submit a new "
                "exchange and schedule from it",
                "exchange",
                "value",
            )
        )
    if kind is PullKind.RUN_OFF and coverage_end is None:
        problems.append(
            Issue("a run-off pull needs the coverage's end", "coverage_end", "required")
        )
    if problems:
        raise InvalidInput("the pull cannot be scheduled", issues=problems)
    assert received_at is not None
    partner = ports.partners.get(record.partner_id)
    if partner is None:
        raise NotFound(f"partner {record.partner_id} is no longer registered")
    now = ports.clock()
    reason, text, event = _consent_reason(ports, record.consent_id or "", partner.npi, now)
    if reason is not None:
        ports.audit.record(event)
        raise ConsentDenied(
            f"no current opt-in for this member at {partner.id}: {text}", reason=reason
        )
    request = {k: v for k, v in record.request.items() if k not in ("consent", "since")}
    request["consent_id"] = record.consent_id
    schedule = PullSchedule(
        id=ports.new_id(),
        kind=kind,
        status=PullStatus.ACTIVE,
        partner_id=record.partner_id,
        client_id=record.client_id,
        consent_id=record.consent_id or "",
        member_key=record.member_key,
        source_exchange_id=record.id,
        last_exchange_id=record.id,
        last_received_at=received_at,
        next_due_at=first_due(kind, received_at, coverage_end),
        coverage_end=coverage_end,
        pulls=0,
        stop_reason=None,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    with ports.transactions.begin() as unit:
        schedules.add(unit, schedule, request)
        unit.record(event, _event(schedule, "pull.scheduled", actor, now))
    return schedule


def cancel_pull(
    ports: ExchangePorts, schedules: PullSchedules, schedule_id: str, *, actor: str
) -> PullSchedule:
    """Stop a schedule (``cancelled``); its request is cut. Stopped already: unchanged."""
    schedule = schedules.get(schedule_id)
    if schedule.status is PullStatus.ACTIVE:
        _stop(ports, schedules, schedule, "cancelled", actor)
    return schedules.get(schedule_id)


def start_due_pulls(ports: ExchangePorts, schedules: PullSchedules, now: datetime) -> PullsRun:
    """Start every pull due at ``now``: the last pull settled first (its data's receipt
    becomes the next ``since``; one still running waits for the next run), the opt-in
    decided again (denied: the schedule stops with the reason), then an exchange asked
    ``since`` the last successful pull."""
    started: list[ExchangeId] = []
    stopped: list[tuple[str, str]] = []
    waiting = 0
    for schedule in schedules.due(now):
        outcome = _run_one(ports, schedules, schedule, now)
        if outcome is None:
            waiting += 1
        elif outcome[0] == "started":
            started.append(ExchangeId(outcome[1]))
        else:
            stopped.append((schedule.id, outcome[1]))
    if started or stopped:
        logger.info("scheduled pulls", extra={"started": len(started), "stopped": len(stopped)})
    return PullsRun(tuple(started), tuple(stopped), waiting)


def _run_one(
    ports: ExchangePorts, schedules: PullSchedules, schedule: PullSchedule, now: datetime
) -> tuple[str, str] | None:
    """One due schedule: ("started", exchange id), ("stopped", reason) or None (its last
    pull still runs)."""
    last_received = schedule.last_received_at
    if schedule.last_exchange_id is not None:
        last = ports.exchanges.get(schedule.last_exchange_id)
        if last.state not in STOPPED_STATES:
            return None
        last_received = _received_at(last) or last_received
    partner = ports.partners.get(schedule.partner_id)
    request = schedules.request(schedule.id)
    if partner is None or request is None:
        _stop(
            ports,
            schedules,
            schedule,
            "unknown-partner" if partner is None else "no-request",
            SYSTEM_ACTOR,
        )
        return "stopped", "unknown-partner" if partner is None else "no-request"
    reason, _, event = _consent_reason(ports, schedule.consent_id, partner.npi, now)
    if reason is not None:
        _stop(ports, schedules, schedule, reason, SYSTEM_ACTOR, event)
        return "stopped", reason
    number = schedule.pulls + 1
    raw = {**request, **({"since": utc_iso(last_received)} if last_received else {})}
    submitted = submit_exchange(
        ExchangeSubmission(
            request=request_from_document(raw),
            raw=raw,
            client_id=schedule.client_id,
            idempotency_key=pull_key(schedule.id, number),
        ),
        ports,
    )
    with ports.transactions.begin() as unit:
        schedules.update(
            unit,
            schedule.id,
            last_exchange_id=submitted.exchange_id,
            last_received_at=last_received,
            next_due_at=next_due(schedule.kind, now),
            pulls=number,
            updated_at=now,
        )
        unit.record(
            event,
            _event(schedule, "pull.started", SYSTEM_ACTOR, now, exchange_id=submitted.exchange_id),
        )
    return "started", submitted.exchange_id


def _stop(
    ports: ExchangePorts,
    schedules: PullSchedules,
    schedule: PullSchedule,
    reason: str,
    actor: str,
    *events: AuditEvent,
) -> None:
    now = ports.clock()
    with ports.transactions.begin() as unit:
        schedules.update(
            unit,
            schedule.id,
            status=PullStatus.STOPPED.value,
            stop_reason=reason,
            next_due_at=None,
            updated_at=now,
        )
        unit.record(*events, _event(schedule, "pull.stopped", actor, now, reason=reason))


def _event(
    schedule: PullSchedule, action: str, actor: str, at: datetime, **detail: Any
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=actor,
        action=action,
        entity_type="PullSchedule",
        entity_id=schedule.id,
        outcome="success",
        detail={
            "kind": schedule.kind.value,
            "partner_id": schedule.partner_id,
            "consent_id": schedule.consent_id,
            **detail,
        },
    )


def pull_schedules_public(schedules: Sequence[PullSchedule]) -> list[dict[str, Any]]:
    """The schedules as the CLI shows them (ids and times; no demographics)."""
    return [
        {
            "id": s.id,
            "kind": s.kind.value,
            "status": s.status.value,
            "old_payer": s.partner_id,
            "consent_id": s.consent_id,
            "source_exchange": s.source_exchange_id,
            "last_exchange": s.last_exchange_id,
            "last_received_at": utc_iso(s.last_received_at) if s.last_received_at else None,
            "next_due_at": utc_iso(s.next_due_at) if s.next_due_at else None,
            "coverage_end": utc_iso(s.coverage_end) if s.coverage_end else None,
            "pulls": s.pulls,
            "stop_reason": s.stop_reason,
        }
        for s in schedules
    ]
