"""The step machine of an outbound exchange (new-payer role): ``proceed`` takes it as far
as it can go now, one use case per hop, from wherever its row says it stands.

Each step reads the exchange, talks to at most one partner endpoint, and records each
state transition with its audit event in the same transaction as its result. Steps
check the state first, so running one again (after a crash, or a retry) changes
nothing that already happened. The durable workflow in ``workflows/exchange.py`` calls
``proceed`` and does the waiting between attempts.

    prepare (here) → $member-match (``matching.py``) → the data (``retrieval.py``)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.exchange.model import (
    STOPPED_STATES,
    BreakerStatus,
    ExchangeRecord,
    ExchangeRequest,
    ExchangeState,
    Move,
)
from payerbridge.exchange.moves import (
    StepResult,
    StepRun,
    advance,
    arrival,
    give_up,
    moved_on,
    stopped,
)
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.steps.consent_checks import ConsentCheck, check_consent, refused
from payerbridge.exchange.steps.matching import match_at_old_payer
from payerbridge.exchange.steps.retrieval import normalize_received, retrieve_record
from payerbridge.exchange.steps.review import awaits_partner_review
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.endpoints import plan_endpoints
from payerbridge.routing.model import Partner
from payerbridge.routing.route import decide_route
from payerbridge.types import ExchangeId

__all__ = ["proceed"]

S = ExchangeState
_PREPARING = (S.SUBMITTED, S.VALIDATED, S.CONSENT_VERIFIED)
_GONE = "the partner is no longer registered"

# How the workflow reads the request kept on the row (``requests.request_from_document``).
RequestParser = Callable[[dict[str, Any]], ExchangeRequest]


def proceed(uow: ExchangeUnit, exchange_id: ExchangeId, parse: RequestParser) -> StepResult:
    """Take the exchange as far as it can go now: prepare, $member-match, $everything and
    normalize, in order, from wherever its row says it stands; stop when it stops or a
    partner call must wait (``retry_at``: call again then).

    Everything needed to carry on is on the row, so a run cut off anywhere, or a call
    that waits, resumes by calling this again: a waiting call's attempts and the start
    of its step are what ``record_attempt`` noted, and a call not yet due is not made.

    One read of the exchange and of its partner serve every use case; the state each
    commit leaves is carried on rather than read back, because a concurrent change (a
    revocation, an operator) still meets the row lock of the next commit as an
    IllegalTransition. A consent decision commits with the transitions before each call."""
    record = uow.exchanges.current(exchange_id)
    if awaits_partner_review(record):
        return _ask_again(uow, record, parse)
    if record.state in STOPPED_STATES:
        return stopped(record.state)
    waiting = _waiting(uow, record)
    if waiting is not None:
        return waiting
    request = parse(record.request)
    partner = uow.partners.get(request.old_payer)
    if partner is None:
        return give_up(uow, record.id, ExchangeReason.UNKNOWN_PARTNER, _GONE)
    check, checked = None, False
    if record.state in _PREPARING:
        prepared, check, record = _prepare(uow, record, partner)
        if prepared.done or prepared.retry_at is not None:
            return prepared
    if record.state is S.ROUTE_SELECTED:
        matched, record = match_at_old_payer(
            uow, _resumed(uow, record, partner), request, check=check
        )
        if matched.done or matched.retry_at is not None:
            return matched
        checked = True
    if record.state in (S.MEMBER_MATCHED, S.RETRIEVING):
        return retrieve_record(uow, _resumed(uow, record, partner), checked=checked)
    if record.state in (S.RECEIVED, S.NORMALIZED):
        return normalize_received(uow, record, partner)
    return stopped(record.state)


def _ask_again(uow: ExchangeUnit, record: ExchangeRecord, parse: RequestParser) -> StepResult:
    """An exchange waiting on the old payer's reviewer, run when it is due: failed past
    its deadline, else ``$member-match`` asked again; a match goes on to the data in the
    same run. Nothing here waits in the workflow: while the answer is still "under
    review" (or the partner is down) the run ends, and the sweep starts the next one
    when it is due, so a long review holds none of the partner's exchange slots."""
    now = uow.clock()
    if record.deadline_at is not None and now >= record.deadline_at:
        text = (
            "the old payer's reviewer did not decide on the member within the time we wait "
            f"({record.error_text or 'under review'}); submit the exchange again to retry"
        )
        return give_up(uow, record.id, ExchangeReason.PARTNER_REVIEW_EXPIRED, text)
    if record.next_attempt_at is not None and record.next_attempt_at > now:
        return StepResult(S.MANUAL_REVIEW, done=True)
    request = parse(record.request)
    partner = uow.partners.get(request.old_payer)
    if partner is None:
        return give_up(uow, record.id, ExchangeReason.UNKNOWN_PARTNER, _GONE)
    # Each question is a step of its own, with the step's budget from now.
    asking = StepRun(record, partner, record.attempts + 1, now)
    matched, record = match_at_old_payer(uow, asking, request)
    if matched.done or matched.retry_at is not None:
        return StepResult(matched.state, done=True)  # not a loop in the workflow: the sweep
    return retrieve_record(uow, StepRun(record, partner, 1, uow.clock()), checked=True)


def _prepare(
    uow: ExchangeUnit, record: ExchangeRecord, partner: Partner
) -> tuple[StepResult, ConsentCheck | None, ExchangeRecord]:
    """submitted → validated → consent_verified → route_selected, or blocked/failed.

    The transitions commit together with the consent decision; a run cut off before the
    commit starts over. A replayed exchange starts here from ``validated``, so consent is
    checked again. The consent check it commits is the one for ``$member-match``
    (returned, for a match that follows at once), with the record as the commit left it."""
    moves = [Move(S.VALIDATED)] if record.state is S.SUBMITTED else []
    check = None
    if record.state in (S.SUBMITTED, S.VALIDATED):
        check = check_consent(uow, record, partner, "member-match")
        if check.consent is None:
            return refused(uow, record.id, check, before=moves), None, record
        policy = check.consent.record.policy.value
        moves.append(
            Move(S.CONSENT_VERIFIED, detail={"consent_id": record.consent_id, "policy": policy})
        )
    routed, record = _select_route(uow, record, partner, moves, check.event if check else None)
    return routed, check, record


def _select_route(
    uow: ExchangeUnit,
    record: ExchangeRecord,
    partner: Partner,
    moves: Sequence[Move],
    event: AuditEvent | None,
) -> tuple[StepResult, ExchangeRecord]:
    """→ route_selected after ``moves``, with ``event`` (the consent decision that allowed
    them), or → failed when no way to the member's data is left; with the record as the
    commit left it. Decided from the directory's last reading of the partner and the live
    state of its endpoint, again on every replay."""
    now = uow.clock()
    open_until, windows = {}, {}
    for endpoint in partner.endpoints:
        breaker = uow.breakers.get(endpoint.base)
        if breaker.status is BreakerStatus.OPEN and breaker.open_until is not None:
            open_until[endpoint.base] = breaker.open_until
        if (window := partner.operations.in_maintenance(now, endpoint.base)) is not None:
            windows[endpoint.base] = window
    plan = plan_endpoints(partner.endpoints, open_until, now, windows)
    if len(partner.endpoints) == 1:
        plan = replace(plan, considered=())  # one endpoint: nothing to explain
    route = decide_route(
        plan, uow.partners.capabilities(partner.id), now=now, operations=partner.operations
    )
    detail = {"partner_id": partner.id, "endpoint": plan.first, "route": route.to_json()}
    if not route.routable:
        text = f"no way to this partner's member data that we can use: {route.why_not()}"
        stop = {"error_code": ExchangeReason.NO_ROUTE, "error_text": text}
        failed = arrival(S.FAILED, ExchangeReason.NO_ROUTE, detail, stop)
        advance(uow, record.id, [*moves, failed], event=event, expected=record.state)
        return StepResult(S.FAILED, done=True), record
    updates: dict[str, Any] = {"request_shape": route.shape.hrex, "data_path": route.data_path}
    wait_until = route.wait_until
    if wait_until is not None:
        # Called when the endpoint can be; a planned window does not use the budget, an
        # open circuit is waited for no longer than the deadline (ADR 0047).
        if route.planned_wait and record.deadline_at is not None:
            updates["deadline_at"] = record.deadline_at + (wait_until - now)
        elif record.deadline_at is not None:
            wait_until = min(wait_until, record.deadline_at)
        updates |= {"next_attempt_at": wait_until, "last_error": route.wait_reason}
    selected = arrival(S.ROUTE_SELECTED, detail=detail, updates=updates)
    advance(uow, record.id, [*moves, selected], event=event, expected=record.state)
    routed = replace(moved_on(record, S.ROUTE_SELECTED), **updates)
    if wait_until is not None:
        return StepResult(S.ROUTE_SELECTED, retry_at=wait_until), routed
    return StepResult(S.ROUTE_SELECTED), routed


def _waiting(uow: ExchangeUnit, record: ExchangeRecord) -> StepResult | None:
    """The exchange's call waits until later (a run resumed early, after a restart)."""
    due = record.next_attempt_at
    if due is not None and due > uow.clock():
        return StepResult(record.state, retry_at=due)
    return None


def _resumed(uow: ExchangeUnit, record: ExchangeRecord, partner: Partner) -> StepRun:
    """The step run now: the attempt its call makes and when the step began, carried on
    from the row when the call was tried before in this state (transitions reset both)."""
    if record.attempts or record.next_attempt_at is not None:
        return StepRun(record, partner, record.attempts + 1, record.step_started_at or uow.clock())
    return StepRun(record, partner, 1, uow.clock())
