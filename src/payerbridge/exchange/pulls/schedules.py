"""Standing pulls: schedule one for a member's first request or from their successful
exchange, cancel them, and start those due as exchanges asked ``since`` the last
successful pull's data was received, the opt-in decided again at each run (issue 54,
ADR 0040).

Each pull a schedule owes is an obligation row (ADR 0037): the first request's week,
then each quarter's or run-off period's, written as the period starts (subject ``pull``)
and taken over by the exchange that pulls for it, which settles it when asked.

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
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.compliance.clocks import Subject, SubjectType, period_clock
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.consent.model import DenyReason, OutboundRequest, Requester, StoredConsent
from payerbridge.consent.service import authorize_request
from payerbridge.errors import Conflict, ConsentDenied, InvalidInput, Issue, NotFound
from payerbridge.exchange.clocks import day_start
from payerbridge.exchange.intake.opt_in import OptIn
from payerbridge.exchange.intake.submission import (
    ExchangeSubmission,
    capture_opt_in,
    opt_in_problem,
    submit_exchange,
)
from payerbridge.exchange.model import (
    DATA_ENDS,
    STOPPED_STATES,
    ExchangeRecord,
    ExchangeState,
    PullSchedule,
    PullStatus,
)
from payerbridge.exchange.moves import SYSTEM_ACTOR
from payerbridge.exchange.pulls.model import (
    RETRY_AFTER,
    Period,
    first_period,
    next_period,
    pull_key,
)
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.received.reconcile import member_key_of
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner
from payerbridge.timestamps import utc_iso
from payerbridge.types import ClientId, ExchangeId, MemberId, PartnerId

__all__ = [
    "PullsRun",
    "cancel_pull",
    "end_coverage",
    "pull_schedules_public",
    "schedule_first_pull",
    "schedule_pull",
    "start_due_pulls",
]

logger = logging.getLogger(__name__)
HOP = "scheduled-pull"
# The old payer's answers that leave nothing to pull from it: no member, several, or its
# refusal on consent grounds.
_NOTHING_TO_PULL = frozenset({ExchangeReason.NO_MATCH, ExchangeReason.MULTIPLE_MATCHES})


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
    uow: ExchangeUnit, consent_id: str, partner_npi: str, now: datetime
) -> tuple[str | None, str, AuditEvent]:
    """The opt-in decided now for a pull: (None, ...) when it permits, else its reason."""
    stored = uow.consents.get(consent_id)
    disclosure = authorize_request(
        stored,
        OutboundRequest(
            consent_id=consent_id,
            partner_npi=partner_npi,
            us=Requester(ClientId(SYSTEM_ACTOR), uow.us.npi),
            at=now,
            hop=HOP,
        ),
    )
    decision = disclosure.decision
    if decision.permitted:
        return None, decision.text, disclosure.event
    return (decision.reason or DenyReason.NO_CONSENT).value, decision.text, disclosure.event


def schedule_pull(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    *,
    actor: str,
    coverage_end: datetime | None = None,
) -> PullSchedule:
    """A standing pull of the member an exchange moved, from that exchange on: quarterly
    while their coverage at the old payer goes on (``coverage_end`` None: no end known),
    run-off from its end. Refused (InvalidInput) unless the exchange stored its data and
    still holds its request; refused (ConsentDenied, with the consent's reason) unless
    the member's opt-in permits asking the old payer now."""
    record = uow.exchanges.get(exchange_id)
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
    if problems:
        raise InvalidInput("the pull cannot be scheduled", issues=problems)
    now = uow.clock()
    consent_end, decided = _opt_in_checked(uow, record.partner_id, record.consent_id or "", now)
    period = next_period(_obligations(uow), record.created_at, coverage_end, consent_end)
    request = {k: v for k, v in record.request.items() if k not in ("consent", "since")}
    request["consent_id"] = record.consent_id
    new = _NewPull(
        record.partner_id,
        record.client_id,
        record.consent_id or "",
        record.member_key,
        coverage_end,
        source=record,
        received_at=received_at,
    )
    schedule = _new_schedule(uow, period, new, actor=actor, now=now)
    return _add(uow, schedule, request, period, decided)


def schedule_first_pull(
    uow: ExchangeUnit,
    submission: ExchangeSubmission,
    *,
    actor: str,
    coverage_end: datetime | None = None,
) -> PullSchedule:
    """The member's first request, owed a week after the later of the new coverage's
    start and their opt-in, started as soon as both have come; then their standing
    pulls, as ``schedule_pull``. An opt-in given with the request is recorded now; one
    whose period has not begun is what the schedule waits for, any other refusal
    (revoked, expired, another member's) refuses the schedule with its reason."""
    request, client_id = submission.request, submission.client_id
    partner = uow.partners.get(request.old_payer)
    if partner is None:
        raise InvalidInput(
            f"no partner is registered with id '{request.old_payer}'",
            issues=[Issue("register the old payer first", "old_payer", "not-found")],
        )
    opt_in = (
        capture_opt_in(uow, OptIn(request.consent, MemberId(request.member_id), partner, client_id))
        if request.consent is not None
        else _captured_opt_in(uow, request.consent_id or "", client_id, request.member_id, partner)
    )
    obligations = _obligations(uow)
    covered = day_start(request.new_coverage.start, obligations.calendar.tz)
    period = first_period(obligations, covered, opt_in.record.period_start)
    now = uow.clock()
    _, decided = _opt_in_checked(uow, partner.id, opt_in.consent_id, max(now, period.start_at))
    raw = {k: v for k, v in submission.raw.items() if k not in ("consent", "since")}
    raw["consent_id"] = opt_in.consent_id
    member_key = member_key_of(client_id, request.member_id)
    new = _NewPull(partner.id, client_id, opt_in.consent_id, member_key, coverage_end)
    schedule = _new_schedule(uow, period, new, actor=actor, now=now)
    return _add(uow, schedule, raw, period, decided)


def _captured_opt_in(
    uow: ExchangeUnit, consent_id: str, client_id: ClientId, member_id: str, partner: Partner
) -> StoredConsent:
    """An opt-in captured before, usable as an exchange's would be (``opt_in_problem``)."""
    stored = uow.consents.get(consent_id)
    problem = opt_in_problem(stored, consent_id, client_id, member_id, partner)
    if problem is not None:
        raise InvalidInput(problem, issues=[Issue(problem, "consent_id", "value")])
    assert stored is not None
    return stored


def _obligations(uow: ExchangeUnit) -> ObligationSet:
    if uow.clocks is None:
        raise RuntimeError("standing pulls keep obligation rows: wire ExchangePorts.clocks")
    return uow.clocks.obligations


def _opt_in_checked(
    uow: ExchangeUnit, partner_id: str, consent_id: str, at: datetime
) -> tuple[datetime | None, AuditEvent]:
    """The opt-in's period end and the decision's audit event, when it permits asking
    the old payer at ``at``; else ConsentDenied with its reason (audited)."""
    partner = uow.partners.get(PartnerId(partner_id))
    if partner is None:
        raise NotFound(f"partner {partner_id} is no longer registered")
    reason, text, event = _consent_reason(uow, consent_id, partner.npi, at)
    if reason is not None:
        uow.audit.record(event)
        raise ConsentDenied(
            f"no current opt-in for this member at {partner.id}: {text}", reason=reason
        )
    stored = uow.consents.get(consent_id)
    return (stored.record.period_end if stored is not None else None), event


@dataclass(frozen=True)
class _NewPull:
    """Whose record a new schedule pulls, from which old payer, under which opt-in and
    until when; ``source``, the exchange it starts from and when that one's data came
    (None: the member's first request, still to be made)."""

    partner_id: PartnerId
    client_id: ClientId
    consent_id: str
    member_key: str | None
    coverage_end: datetime | None
    source: ExchangeRecord | None = None
    received_at: datetime | None = None


def _new_schedule(
    uow: ExchangeUnit, period: Period, new: _NewPull, *, actor: str, now: datetime
) -> PullSchedule:
    source = new.source
    return PullSchedule(
        id=uow.new_id(),
        kind=period.kind,
        status=PullStatus.ACTIVE,
        partner_id=new.partner_id,
        client_id=new.client_id,
        consent_id=new.consent_id,
        member_key=new.member_key,
        source_exchange_id=source.id if source is not None else None,
        last_exchange_id=source.id if source is not None else None,
        last_received_at=new.received_at,
        next_due_at=period.start_at,
        coverage_end=new.coverage_end,
        pulls=0,
        stop_reason=None,
        awaiting_pull=False,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )


def _add(
    uow: ExchangeUnit,
    schedule: PullSchedule,
    request: dict[str, Any],
    period: Period,
    decided: AuditEvent,
) -> PullSchedule:
    """The schedule, the row of the period its first pull meets and the opt-in's decision
    that let it be made, in one unit."""
    with uow:
        uow.pulls.add(schedule, request)
        _owe(uow, schedule, 1, period)
        scheduled = _event(schedule, "pull.scheduled", schedule.created_by, schedule.created_at)
        uow.record(decided, scheduled)
    return schedule


def _owe(uow: ExchangeUnit, schedule: PullSchedule, number: int, period: Period) -> None:
    """The row of the period pull ``number`` meets, as the period starts."""
    if uow.clocks is None or period.obligation is None or period.due_at is None:
        return
    clock = period_clock(
        uow.clocks.obligations,
        period.obligation,
        _period_subject(schedule.id, number),
        started=period.started_at,
        due=period.due_at,
        clock_id=uow.new_id(),
        at=uow.now,
        partner_id=schedule.partner_id,
    )
    uow.clocks.ledger.start(uow, clock)


def _period_subject(schedule_id: str, number: int) -> Subject:
    return Subject(SubjectType.PULL, f"{schedule_id}/{number}")


def cancel_pull(uow: ExchangeUnit, schedule_id: str, *, actor: str) -> PullSchedule:
    """Stop a schedule (``cancelled``); its request is cut. Stopped already: unchanged."""
    schedule = uow.pulls.get(schedule_id)
    if schedule.status is PullStatus.ACTIVE:
        _stop(uow, schedule, "cancelled", actor)
    return uow.pulls.get(schedule_id)


def end_coverage(
    uow: ExchangeUnit,
    schedule_id: str,
    coverage_end: datetime,
    *,
    actor: str,
) -> PullSchedule:
    """The day the member's coverage at the old payer ends, learned after scheduling: the
    period owed now stands (its pull comes before its end), and the periods after it
    follow the coverage (run-off from its end). Conflict for a stopped schedule."""
    schedule = uow.pulls.get(schedule_id)
    if schedule.status is not PullStatus.ACTIVE:
        raise Conflict(
            f"pull schedule {schedule_id[:64]} stopped ({schedule.stop_reason}): "
            "schedule the member again"
        )
    now = uow.clock()
    with uow:
        uow.pulls.update(schedule.id, coverage_end=coverage_end, updated_at=now)
        uow.record(_event(schedule, "pull.updated", actor, now, coverage_end=utc_iso(coverage_end)))
    return uow.pulls.get(schedule_id)


def start_due_pulls(uow: ExchangeUnit, now: datetime) -> PullsRun:
    """Start every pull due at ``now``: the last pull settled first (its data's receipt
    becomes the next ``since``; one still running waits for the next run), the opt-in
    decided again (denied: the schedule stops with the reason), then an exchange asked
    ``since`` the last successful pull."""
    started: list[ExchangeId] = []
    stopped: list[tuple[str, str]] = []
    waiting = 0
    for schedule in uow.pulls.due(now):
        outcome = _run_one(uow, schedule, now)
        if outcome is not None and outcome[0] == "advanced":
            moved = uow.pulls.get(schedule.id)
            if moved.next_due_at is not None and moved.next_due_at <= now:  # looked at late
                outcome = _run_one(uow, moved, now)
        if outcome is None or outcome[0] == "advanced":
            waiting += outcome is None
        elif outcome[0] == "started":
            started.append(ExchangeId(outcome[1]))
        else:
            stopped.append((schedule.id, outcome[1]))
    if started or stopped:
        logger.info("scheduled pulls", extra={"started": len(started), "stopped": len(stopped)})
    return PullsRun(tuple(started), tuple(stopped), waiting)


def _run_one(uow: ExchangeUnit, schedule: PullSchedule, now: datetime) -> tuple[str, str] | None:
    """One due schedule: ("started", exchange id), ("advanced", kind), ("stopped",
    reason) or None (its last pull still runs, or waits for a person)."""
    takes_over = _period_subject(schedule.id, schedule.pulls + 1)
    if schedule.awaiting_pull:
        assert schedule.last_exchange_id is not None
        last = uow.exchanges.get(schedule.last_exchange_id)
        if last.state not in STOPPED_STATES or last.state is ExchangeState.MANUAL_REVIEW:
            return None
        received = _received_at(last)
        if received is not None:
            return _advance(uow, schedule, last, received)
        if last.state is ExchangeState.BLOCKED or last.error_code in _NOTHING_TO_PULL:
            answer = last.error_code or last.state.value
            _stop(uow, schedule, answer, SYSTEM_ACTOR)
            return "stopped", answer
        # No answer came (an outage, a spent budget): asked again now, the open row with it.
        takes_over = Subject(SubjectType.EXCHANGE, last.id)
    partner = uow.partners.get(schedule.partner_id)
    request = uow.pulls.request(schedule.id)
    if partner is None or request is None:
        gone = "unknown-partner" if partner is None else "no-request"
        _stop(uow, schedule, gone, SYSTEM_ACTOR)
        return "stopped", gone
    reason, _, event = _consent_reason(uow, schedule.consent_id, partner.npi, now)
    if reason is not None:
        _stop(uow, schedule, reason, SYSTEM_ACTOR, event)
        return "stopped", reason
    number = schedule.pulls + 1
    since = schedule.last_received_at
    raw = {**request, **({"since": utc_iso(since)} if since else {})}
    submitted = submit_exchange(
        ExchangeSubmission(
            request=request_from_document(raw),
            raw=raw,
            client_id=schedule.client_id,
            idempotency_key=pull_key(schedule.id, number),
            takes_over=takes_over,
        ),
        uow,
    )
    with uow:
        uow.pulls.update(
            schedule.id,
            last_exchange_id=submitted.exchange_id,
            next_due_at=now + RETRY_AFTER,
            awaiting_pull=True,
            pulls=number,
            updated_at=now,
        )
        uow.record(
            event,
            _event(schedule, "pull.started", SYSTEM_ACTOR, now, exchange_id=submitted.exchange_id),
        )
    return "started", submitted.exchange_id


def _advance(
    uow: ExchangeUnit,
    schedule: PullSchedule,
    last: ExchangeRecord,
    received: datetime,
) -> tuple[str, str]:
    """The last pull stored its data: the next period starts from when that pull did,
    its row written now, and its receipt is the next pull's ``since``."""
    stored = uow.consents.get(schedule.consent_id)
    consent_end = stored.record.period_end if stored is not None else None
    period = next_period(_obligations(uow), last.created_at, schedule.coverage_end, consent_end)
    now = uow.clock()
    with uow:
        uow.pulls.update(
            schedule.id,
            kind=period.kind.value,
            last_received_at=received,
            next_due_at=period.start_at,
            awaiting_pull=False,
            updated_at=now,
        )
        _owe(uow, schedule, schedule.pulls + 1, period)
    return "advanced", period.kind.value


def _stop(
    uow: ExchangeUnit,
    schedule: PullSchedule,
    reason: str,
    actor: str,
    *events: AuditEvent,
) -> None:
    now = uow.clock()
    with uow:
        uow.pulls.update(
            schedule.id,
            status=PullStatus.STOPPED.value,
            stop_reason=reason,
            next_due_at=None,
            updated_at=now,
        )
        uow.record(*events, _event(schedule, "pull.stopped", actor, now, reason=reason))


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
    """The schedules as the CLI and the API show them (ids and times; no demographics)."""
    return [
        {
            "id": s.id,
            "kind": s.kind.value,
            "status": s.status.value,
            "old_payer": s.partner_id,
            "consent_id": s.consent_id,
            "client_id": s.client_id,
            "source_exchange": s.source_exchange_id,
            "awaiting_pull": s.awaiting_pull,
            "last_exchange": s.last_exchange_id,
            "last_received_at": utc_iso(s.last_received_at) if s.last_received_at else None,
            "next_due_at": utc_iso(s.next_due_at) if s.next_due_at else None,
            "coverage_end": utc_iso(s.coverage_end) if s.coverage_end else None,
            "pulls": s.pulls,
            "stop_reason": s.stop_reason,
        }
        for s in schedules
    ]
