"""Use cases of an outbound exchange (new-payer role), one function per workflow step.

Each step reads the exchange, talks to at most one partner endpoint, and records each
state transition with its audit event in the same transaction as its result. Steps
check the state first, so running a step again (after a crash, or a retry) changes
nothing that already happened. The durable workflow in ``workflows/exchange.py``
calls them in order and does the waiting between attempts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import ConsentId, ConsentRole, Requester, StoredConsent
from payerbridge.consent.service import (
    authorize_request,
    consent_recorded,
    record_consent,
    revoke_consent,
)
from payerbridge.errors import (
    AmbiguousMatch,
    Conflict,
    ConsentDenied,
    IllegalTransition,
    Issue,
    MatchUnderReview,
    NoMatch,
    PartnerAuthRejected,
    PartnerError,
    PartnerRejected,
    StoreConflict,
    UnprocessableRequest,
)
from payerbridge.exchange.breaker import BreakerStatus
from payerbridge.exchange.model import (
    STOPPED_STATES,
    ConsentGrant,
    ExchangeRecord,
    ExchangeRequest,
    ExchangeState,
    Move,
    Submission,
)
from payerbridge.exchange.normalize import NormalizedBundle, normalize_everything_bundle
from payerbridge.exchange.opt_in import opt_in_consent
from payerbridge.exchange.outbound import CallOutcome, StepClock, call_partner
from payerbridge.exchange.ports import ExchangePorts, PartnerClient, Retrieved, UnitOfWork
from payerbridge.fhir.member_match import MemberMatchResult, build_member_match_request
from payerbridge.routing.model import Partner
from payerbridge.routing.profiles import PROFILES
from payerbridge.routing.route import SEARCH, decide_route, read_data_path
from payerbridge.types import ClientId, ExchangeId, MemberId, PartnerId

__all__ = [
    "SYSTEM_ACTOR",
    "StepResult",
    "ask_again_now",
    "cancel",
    "capture_opt_in",
    "Submission",
    "fail",
    "match",
    "normalize",
    "prepare",
    "proceed",
    "replay",
    "retrieve",
    "revoke_and_stop",
    "submit_exchange",
]

logger = logging.getLogger(__name__)
S = ExchangeState
SYSTEM_ACTOR = "payerbridge"


@dataclass(frozen=True)
class StepResult:
    """Where the step left the exchange: ``done`` when no further step should run,
    ``retry_at`` when this step should run again then (the row says which attempt that
    is and when the step began: ``proceed`` resumes from it)."""

    state: ExchangeState
    done: bool = False
    retry_at: datetime | None = None


def _moved_on(record: ExchangeRecord, state: ExchangeState, **updates: Any) -> ExchangeRecord:
    """The record as a commit that moved it to ``state`` left it (a transition resets
    the attempts of the call that waited)."""
    return replace(record, state=state, attempts=0, next_attempt_at=None, **updates)


def request_hash(raw: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def submit_exchange(
    ports: ExchangePorts,
    request: ExchangeRequest,
    raw: dict[str, Any],
    *,
    client_id: str,
    request_id: str | None,
    idempotency_key: str | None,
) -> Submission:
    """Record a new exchange in ``submitted`` (the workflow takes it from there), or
    return the one this client already submitted under the same Idempotency-Key."""
    digest = request_hash(raw)
    earlier = ports.exchanges.find_by_idempotency_key(client_id, idempotency_key)
    if earlier is None:
        partner = _check_partner(ports, request.old_payer)
        now = ports.clock()
        exchange_id = ExchangeId(ports.new_id())
        try:
            # The opt-in captured with the request commits with the exchange, so a
            # submission that loses an Idempotency-Key race leaves no opt-in behind.
            with ports.transactions.begin() as unit:
                consent_id = _opt_in(
                    ports, unit, request, partner, client_id=client_id, request_id=request_id
                )
                ports.exchanges.create(
                    unit,
                    exchange_id=exchange_id,
                    partner_id=request.old_payer,
                    client_id=client_id,
                    request=raw,
                    request_hash=digest,
                    at=now,
                    request_id=request_id,
                    idempotency_key=idempotency_key,
                    deadline_at=now + timedelta(seconds=ports.retry_policy.exchange_budget_seconds),
                    policy_version=ports.retry_policy.version,
                    consent_id=consent_id,
                )
            earlier = Submission(exchange_id, True, digest)
        except StoreConflict:  # a concurrent twin under the same key committed first
            earlier = ports.exchanges.find_by_idempotency_key(client_id, idempotency_key)
            if earlier is None:
                raise
    if earlier.request_hash != digest:
        raise Conflict(
            "this Idempotency-Key was already used with a different request",
            issues=[
                Issue(
                    f"exchange {earlier.exchange_id} was submitted under this Idempotency-Key "
                    "with a different body; use a new key for a new request",
                    "Idempotency-Key",
                    "conflict",
                )
            ],
        )
    if earlier.created:
        logger.info(
            "exchange submitted",
            extra={"exchange_id": earlier.exchange_id, "partner_id": request.old_payer},
        )
    return earlier


def _check_partner(ports: ExchangePorts, partner_id: PartnerId) -> Partner:
    partner = ports.partners.get(partner_id)
    if partner is None:
        raise UnprocessableRequest(
            f"no partner is registered with id '{partner_id}'",
            issues=[
                Issue(
                    f"no partner is registered with id '{partner_id}'; register it "
                    "with `payerbridge partners add` or POST /partners",
                    "old_payer",
                    "not-found",
                )
            ],
        )
    return partner


def _opt_in(
    ports: ExchangePorts,
    unit: UnitOfWork,
    request: ExchangeRequest,
    partner: Partner,
    *,
    client_id: str,
    request_id: str | None,
) -> str:
    """The id of the opt-in the exchange runs under: one captured now from the request
    (kept in ``unit``), or one captured before, which must be this member's and name
    this old payer."""
    if request.consent is not None:
        consent = _new_opt_in(ports, request.consent, request.member_id, partner, client_id)
        event = consent_recorded(consent, actor=client_id, request_id=request_id)
        return ports.consents.add(unit, consent, event=event).consent_id
    stored = ports.consents.get(request.consent_id or "")
    if (
        stored is None
        or stored.role is not ConsentRole.RECEIVE
        or stored.record.client_id != client_id  # another client's opt-in: not yours to use
    ):
        problem = f"no member opt-in is recorded with id '{request.consent_id}'"
    elif stored.partner_id != partner.id:
        problem = "the opt-in names another old payer than this exchange's old_payer"
    elif stored.record.member_id != request.member_id:
        problem = "the opt-in was given by another member than the one on new_coverage"
    else:
        return stored.consent_id
    raise UnprocessableRequest(problem, issues=[Issue(problem, "consent_id", "value")])


def capture_opt_in(
    ports: ExchangePorts,
    grant: ConsentGrant,
    member_id: str,
    partner: Partner,
    client_id: str,
    *,
    request_id: str | None = None,
) -> StoredConsent:
    """Record a member's opt-in to the exchange with ``partner`` (audited); the same
    opt-in captured again returns the first record."""
    consent = _new_opt_in(ports, grant, member_id, partner, client_id)
    with ports.transactions.begin() as unit:
        return record_consent(unit, ports.consents, consent, actor=client_id, request_id=request_id)


def _new_opt_in(
    ports: ExchangePorts, grant: ConsentGrant, member_id: str, partner: Partner, client_id: str
) -> StoredConsent:
    return opt_in_consent(
        grant,
        consent_id=ConsentId(ports.new_id()),
        member_id=MemberId(member_id),
        old_payer=partner,
        us=ports.us,
        client_id=ClientId(client_id),
        zone=ports.consent_zone,
        at=ports.clock(),
    )


def fail(ports: ExchangePorts, exchange_id: ExchangeId, code: str, text: str) -> StepResult:
    """Give up on an exchange (after an unexpected error); a no-op once it has stopped."""
    state = ports.exchanges.current(exchange_id).state
    if state in STOPPED_STATES:
        return StepResult(state, done=True)
    return _fail(ports, exchange_id, code, text)


def _fail(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    code: str,
    text: str,
    detail: dict[str, Any] | None = None,
) -> StepResult:
    stop = {"error_code": code, "error_text": text, "next_attempt_at": None}
    with ports.transactions.begin() as unit:
        ports.exchanges.advance(
            unit,
            exchange_id,
            [Move(S.FAILED, code, detail, stop)],
            at=ports.clock(),
            actor=SYSTEM_ACTOR,
            policy_version=ports.retry_policy.version,
        )
    logger.warning("exchange failed", extra={"exchange_id": exchange_id, "reason_code": code})
    return StepResult(S.FAILED, done=True)


def _advance(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    target: ExchangeState,
    *,
    event: AuditEvent | None = None,
    **move: Any,
) -> None:
    """``_advance_in`` a unit of work of its own, after ``event`` (the consent decision
    that allowed the move)."""
    with ports.transactions.begin() as unit:
        if event is not None:
            unit.record(event)
        _advance_in(unit, ports, exchange_id, target, **move)


def _advance_in(
    unit: UnitOfWork,
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    target: ExchangeState,
    *,
    reason_code: str | None = None,
    detail: dict[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
    before: Sequence[Move] = (),
    then: Sequence[Move] = (),
    expected: ExchangeState | None = None,
) -> None:
    """Move to ``target`` (passing through ``before`` and on to ``then``) in ``unit``;
    ``expected``, the state the moves start from as the caller read it (the store then
    moves the row only if it is still there)."""
    reset = {"attempts": 0, "next_attempt_at": None, **(updates or {})}
    ports.exchanges.advance(
        unit,
        exchange_id,
        [*before, Move(target, reason_code, detail, reset), *then],
        at=ports.clock(),
        actor=SYSTEM_ACTOR,
        policy_version=ports.retry_policy.version,
        expected=expected,
    )


def _stopped(state: ExchangeState) -> StepResult:
    """The exchange is past this step (a replayed step) or has stopped."""
    return StepResult(state, done=state in STOPPED_STATES)


def step_clock(
    ports: ExchangePorts, record: ExchangeRecord, step: str, attempt: int, started: datetime
) -> StepClock:
    deadline = record.deadline_at or record.created_at + timedelta(
        seconds=ports.retry_policy.exchange_budget_seconds
    )
    return StepClock(
        step=step,
        attempt=attempt,
        started=started,
        step_deadline=started + timedelta(seconds=ports.retry_policy.step_budget_seconds),
        exchange_deadline=deadline,
    )


def idempotency_key(record: ExchangeRecord, step: str) -> str:
    """Stable per exchange and step, so the partner recognises a retried call; a replay
    is a new request and gets its own key."""
    suffix = f":replay-{record.replay_count}" if record.replay_count else ""
    return f"{record.id}:{step}{suffix}"


def prepare(ports: ExchangePorts, exchange_id: ExchangeId, request: ExchangeRequest) -> StepResult:
    """submitted → validated → consent_verified → route_selected, or blocked/failed.

    The transitions commit together with the consent decision; a run cut off before the
    commit starts over. A replayed exchange starts here from ``validated``, so consent is
    checked again."""
    record = ports.exchanges.current(exchange_id)
    if record.state not in _PREPARING:
        return _stopped(record.state)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    return _prepare(ports, record, partner)[0]


_PREPARING = (S.SUBMITTED, S.VALIDATED, S.CONSENT_VERIFIED)


def _prepare(
    ports: ExchangePorts, record: ExchangeRecord, partner: Partner
) -> tuple[StepResult, _ConsentCheck | None, ExchangeRecord]:
    """``prepare`` of a record in a preparing state. The consent check it commits is the
    one for ``$member-match`` (returned, for a match that follows at once), with the
    record as the commit left it."""
    moves = [Move(S.VALIDATED)] if record.state is S.SUBMITTED else []
    check = None
    if record.state in (S.SUBMITTED, S.VALIDATED):
        check = _check_consent(ports, record, partner, "member-match")
        if check.consent is None:
            return _refused(ports, record.id, check, before=moves), None, record
        policy = check.consent.record.policy.value
        moves.append(
            Move(S.CONSENT_VERIFIED, detail={"consent_id": record.consent_id, "policy": policy})
        )
    # Decided from the directory's last reading of the partner and the live state of its
    # endpoint, again on every replay.
    now = ports.clock()
    breaker = ports.breakers.get(partner.fhir_base)
    route = decide_route(
        partner.fhir_base,
        ports.partners.capabilities(partner.id),
        now=now,
        operations=partner.operations,
        circuit_open_until=breaker.open_until if breaker.status is BreakerStatus.OPEN else None,
    )
    detail = {"partner_id": partner.id, "endpoint": partner.fhir_base, "route": route.to_json()}
    if not route.routable:
        text = f"no way to this partner's member data that we can use: {route.why_not()}"
        _advance(
            ports,
            record.id,
            S.FAILED,
            reason_code="no-route",
            detail=detail,
            updates={"error_code": "no-route", "error_text": text},
            before=moves,
            event=check.event if check else None,
            expected=record.state,
        )
        return StepResult(S.FAILED, done=True), None, record
    updates: dict[str, Any] = {"request_shape": route.shape.hrex, "data_path": route.data_path}
    if route.wait_until is not None:
        # Called when the endpoint can be; a planned window does not use the budget.
        updates |= {"next_attempt_at": route.wait_until, "last_error": route.wait_reason}
        if route.planned_wait and record.deadline_at is not None:
            updates["deadline_at"] = record.deadline_at + (route.wait_until - now)
    _advance(
        ports,
        record.id,
        S.ROUTE_SELECTED,
        detail=detail,
        updates=updates,
        before=moves,
        event=check.event if check else None,
        expected=record.state,
    )
    routed = replace(_moved_on(record, S.ROUTE_SELECTED), **updates)
    if route.wait_until is not None:
        return StepResult(S.ROUTE_SELECTED, retry_at=route.wait_until), check, routed
    return StepResult(S.ROUTE_SELECTED), check, routed


def proceed(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    parse: Callable[[dict[str, Any]], ExchangeRequest],
) -> StepResult:
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
    record = ports.exchanges.current(exchange_id)
    if awaits_partner_review(record):
        return _ask_again(ports, record, parse)
    if record.state in STOPPED_STATES:
        return _stopped(record.state)
    waiting = _waiting(ports, record)
    if waiting is not None:
        return waiting
    request = parse(record.request)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    check, checked = None, False
    if record.state in _PREPARING:
        prepared, check, record = _prepare(ports, record, partner)
        if prepared.done or prepared.retry_at is not None:
            return prepared
    if record.state is S.ROUTE_SELECTED:
        attempt, started = _resumed(ports, record)
        matched, record = _match(
            ports, record, partner, request, attempt, started, check, onward=True
        )
        if matched.done or matched.retry_at is not None:
            return matched
        checked = True
    if record.state in (S.MEMBER_MATCHED, S.RETRIEVING):
        attempt, started = _resumed(ports, record)
        return _retrieve(ports, record, partner, attempt, started, checked=checked)
    if record.state in (S.RECEIVED, S.NORMALIZED):
        return _normalize(ports, record, partner)
    return _stopped(record.state)


PARTNER_REVIEW = "partner-review"
_REVIEW_POLL_CAP = timedelta(hours=1)


def awaits_partner_review(record: ExchangeRecord) -> bool:
    """In ``manual_review`` because the old payer's reviewer is looking at the match:
    asked again when ``next_attempt_at`` comes, failed at ``deadline_at``."""
    return record.state is S.MANUAL_REVIEW and record.error_code == PARTNER_REVIEW


def _ask_again(
    ports: ExchangePorts,
    record: ExchangeRecord,
    parse: Callable[[dict[str, Any]], ExchangeRequest],
) -> StepResult:
    """An exchange waiting on the old payer's reviewer, run when it is due: failed past
    its deadline, else ``$member-match`` asked again; a match goes on to the data in the
    same run. Nothing here waits in the workflow: while the answer is still "under
    review" (or the partner is down) the run ends, and the sweep starts the next one
    when it is due, so a long review holds none of the partner's exchange slots."""
    now = ports.clock()
    if record.deadline_at is not None and now >= record.deadline_at:
        text = (
            "the old payer's reviewer did not decide on the member within the time we wait "
            f"({record.error_text or 'under review'}); submit the exchange again to retry"
        )
        return _fail(ports, record.id, "partner-review-expired", text)
    if record.next_attempt_at is not None and record.next_attempt_at > now:
        return StepResult(S.MANUAL_REVIEW, done=True)
    request = parse(record.request)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, record.id, "unknown-partner", "the partner is no longer registered")
    # Each question is a step of its own, with the step's budget from now.
    matched, record = _match(
        ports, record, partner, request, record.attempts + 1, now, None, onward=True
    )
    if matched.done or matched.retry_at is not None:
        return StepResult(matched.state, done=True)  # not a loop in the workflow: the sweep
    return _retrieve(ports, record, partner, 1, ports.clock(), checked=True)


def _under_review(ports: ExchangePorts, record: ExchangeRecord, text: str, key: str) -> StepResult:
    """The old payer answered that a person is looking at the match: wait for it, asking
    again after as long as we have already waited (at least the poll, at most an hour)."""
    policy = ports.retry_policy
    now = ports.clock()
    detail = {"partner_review": text, "request": key}
    if record.state is S.MANUAL_REVIEW:  # asked again: still under review
        poll = timedelta(seconds=policy.review_poll_seconds)
        # When the wait began is on the row: its deadline less the whole wait.
        began = (record.deadline_at or now) - timedelta(seconds=policy.review_wait_seconds)
        wait = min(max(now - began, poll), _REVIEW_POLL_CAP)
        with ports.transactions.begin() as unit:
            ports.exchanges.record_attempt(
                unit,
                record.id,
                step="member-match",
                attempts=0,
                next_attempt_at=now + wait,
                step_started_at=now,
                last_error="still under review at the old payer",
                at=now,
                detail=detail,
            )
        return StepResult(S.MANUAL_REVIEW, done=True)
    _advance(
        ports,
        record.id,
        S.MANUAL_REVIEW,
        reason_code=PARTNER_REVIEW,
        detail=detail,
        updates={
            "error_code": PARTNER_REVIEW,
            "error_text": text,
            "attempts": 0,
            "step_started_at": now,
            "next_attempt_at": now + timedelta(seconds=policy.review_poll_seconds),
            "deadline_at": now + timedelta(seconds=policy.review_wait_seconds),
        },
        expected=record.state,
    )
    return StepResult(S.MANUAL_REVIEW, done=True)


def _waiting(ports: ExchangePorts, record: ExchangeRecord) -> StepResult | None:
    """The exchange's call waits until later (a run resumed early, after a restart)."""
    due = record.next_attempt_at
    if due is not None and due > ports.clock():
        return StepResult(record.state, retry_at=due)
    return None


def _resumed(ports: ExchangePorts, record: ExchangeRecord) -> tuple[int, datetime]:
    """The attempt the step's call makes now and when the step began: carried on from
    the row when the call was tried before in this state (transitions reset both)."""
    if record.attempts or record.next_attempt_at is not None:
        return record.attempts + 1, record.step_started_at or ports.clock()
    return 1, ports.clock()


@dataclass(frozen=True)
class _ConsentCheck:
    """The member's opt-in re-checked before a hop: the consent when it permits the hop,
    else why not; ``event`` is the audited decision, to commit with what follows."""

    consent: StoredConsent | None
    event: AuditEvent
    reason: str
    text: str
    hop: str


def _check_consent(
    ports: ExchangePorts,
    record: ExchangeRecord,
    partner: Partner,
    hop: str,
    *,
    read: StoredConsent | None = None,
) -> _ConsentCheck:
    """Re-check the member's opt-in before this hop. Denied: the caller blocks the
    exchange with the reason (``revoked``, ``expired``, ...) and sends nothing.

    ``read``: the opt-in as this run read it for the hop before, decided again now. An
    opt-in changes only when it is revoked, and its revocation blocks the exchange in
    the same transaction, so the commit that carries this decision finds the exchange
    moved (IllegalTransition) as surely as a fresh read would have found it revoked."""
    if read is not None:
        stored: StoredConsent | None = read
    else:
        stored = ports.consents.get(record.consent_id) if record.consent_id else None
    disclosure = authorize_request(
        stored,
        consent_id=record.consent_id,
        partner_npi=partner.npi,
        us=Requester(ClientId(SYSTEM_ACTOR), ports.us.npi),
        at=ports.clock(),
        hop=hop,
    )
    decision = disclosure.decision
    permitted = stored if decision.permitted else None
    reason = decision.reason.value if decision.reason else "no-consent"
    return _ConsentCheck(permitted, disclosure.event, reason, decision.text, hop)


def _refused(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    check: _ConsentCheck,
    *,
    before: Sequence[Move] = (),
) -> StepResult:
    """→ ``blocked`` because our consent check refused the hop, with that decision."""
    detail = {"hop": check.hop}
    return _block(ports, exchange_id, check.reason, check.text, detail, before, check.event)


def _block(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    reason: str,
    text: str,
    detail: dict[str, Any],
    before: Sequence[Move] = (),
    event: AuditEvent | None = None,
) -> StepResult:
    """→ ``blocked`` on consent grounds (with the audited decision that refused it, when
    ours); a revocation may have blocked it already."""
    try:
        _advance(
            ports,
            exchange_id,
            S.BLOCKED,
            reason_code=reason,
            detail=detail,
            updates={"error_code": reason, "error_text": text},
            before=before,
            event=event,
        )
    except IllegalTransition:
        if event is not None:
            ports.audit.record(event)
        return _stopped(ports.exchanges.current(exchange_id).state)
    logger.warning("exchange blocked", extra={"exchange_id": exchange_id, "reason_code": reason})
    return StepResult(S.BLOCKED, done=True)


_MATCH_FAILURES: dict[type[Exception], str] = {
    NoMatch: "no-match",
    AmbiguousMatch: "multiple-matches",
}


def match(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    request: ExchangeRequest,
    *,
    attempt: int = 1,
    started: datetime | None = None,
) -> StepResult:
    """route_selected → member_matched via the partner's $member-match.

    On a replay the member was matched before: a different answer now is not
    silently accepted but stops in ``manual_review``."""
    record = ports.exchanges.current(exchange_id)
    if record.state is not S.ROUTE_SELECTED:
        return _stopped(record.state)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    began = started or ports.clock()
    return _match(ports, record, partner, request, attempt, began, None, onward=False)[0]


def _match(
    ports: ExchangePorts,
    record: ExchangeRecord,
    partner: Partner,
    request: ExchangeRequest,
    attempt: int,
    started: datetime,
    check: _ConsentCheck | None,
    *,
    onward: bool,
) -> tuple[StepResult, ExchangeRecord]:
    """``match`` of a record in ``route_selected``, under ``check`` when prepare has just
    committed one for this hop. ``onward``: a matched member goes on to ``retrieving``
    in the same commit, with the consent decision for ``$everything``."""
    exchange_id = record.id
    if check is None:
        check = _check_consent(ports, record, partner, "member-match")
        if check.consent is None:
            return _refused(ports, exchange_id, check), record
        ports.audit.record(check.event)  # durable before anything leaves
    assert check.consent is not None
    parameters = build_member_match_request(
        request,
        check.consent.resource,
        our_name=ports.us.name,
        our_npi=ports.us.npi,
        partner_name=partner.name,
        partner_npi=partner.npi,
        shape=PROFILES.hrex.get(record.request_shape or "", PROFILES.current),
        member_system=f"{ports.us.fhir_base}/NamingSystem/member-id"
        if ports.us.fhir_base
        else None,
    )
    key = idempotency_key(record, "member-match")
    if awaits_partner_review(record):
        # A new question: under the first key the old payer answers its first answer again.
        key += f":review-{int(ports.clock().timestamp())}"
    clock = step_clock(ports, record, "member-match", attempt, started)
    try:
        outcome = call_partner(
            ports,
            exchange_id,
            partner,
            clock,
            lambda timeout: _member_of(ports.client, partner, parameters, key, timeout),
        )
    except ConsentDenied as exc:  # the old payer cannot comply with the consent (mm-11)
        return _block(ports, exchange_id, exc.reason, exc.text, {"by": "partner"}), record
    except MatchUnderReview as exc:  # a person at the old payer is looking at the match
        return _under_review(ports, record, exc.text, key), record
    except (NoMatch, AmbiguousMatch) as exc:
        return _fail(ports, exchange_id, _MATCH_FAILURES[type(exc)], exc.text), record
    except PartnerError as exc:  # terminal: a contract error, or credentials refused twice
        failed = _fail(ports, exchange_id, _partner_code(exc), exc.text, {"status": exc.status})
        return failed, record
    if outcome.value is None:
        return _after_failed_call(outcome, record.state), record
    answer, found_by = outcome.value
    member_ref = answer.member_ref
    assert member_ref is not None
    if record.matched_member_ref is not None and record.matched_member_ref != member_ref:
        if record.state is S.MANUAL_REVIEW:  # the old payer's reviewer chose another member
            text = "the old payer's reviewer matched a different member than before"
            return _fail(ports, exchange_id, "identity-changed", text), record
        _advance(
            ports,
            exchange_id,
            S.MANUAL_REVIEW,
            reason_code="identity-changed",
            detail={"replay": record.replay_count},
            updates={
                "error_code": "identity-changed",
                "error_text": "on replay the partner matched a different member than before; "
                "a person must confirm the member before data is requested",
            },
        )
        return StepResult(S.MANUAL_REVIEW, done=True), record
    updates: dict[str, Any] = {
        "matched_member_ref": member_ref,
        "member_identifier": answer.identifier_value,
    }
    if awaits_partner_review(record):  # decided: the wait is over, the data has its budget
        budget = timedelta(seconds=ports.retry_policy.exchange_budget_seconds)
        updates |= {"error_code": None, "error_text": None, "deadline_at": ports.clock() + budget}
    how = {"member_found_by": found_by}
    matched = _moved_on(record, S.MEMBER_MATCHED, matched_member_ref=member_ref)
    if not onward:
        _advance(
            ports, exchange_id, S.MEMBER_MATCHED, updates=updates, detail=how, expected=record.state
        )
        return StepResult(S.MEMBER_MATCHED), matched
    onward_check = _check_consent(ports, matched, partner, "everything", read=check.consent)
    reached = Move(
        S.MEMBER_MATCHED,
        detail=how,
        updates={"attempts": 0, "next_attempt_at": None, **updates},
    )
    if onward_check.consent is None:
        return _refused(ports, exchange_id, onward_check, before=[reached]), matched
    event = onward_check.event
    _advance(ports, exchange_id, S.RETRIEVING, before=[reached], event=event, expected=record.state)
    return StepResult(S.RETRIEVING), _moved_on(matched, S.RETRIEVING)


def _member_of(
    client: PartnerClient,
    partner: Partner,
    parameters: dict[str, Any],
    key: str,
    timeout: float,
) -> tuple[MemberMatchResult, str]:
    """``$member-match``, then, where the partner answers the HRex 1.0.0 way (the member's
    identifier without ``MemberId``), the ``Patient?identifier=`` search PDex 2.0 expects
    next; with how the member was found. One attempt: both calls are safe to repeat."""
    answer = client.member_match(partner, parameters, idempotency_key=key, timeout=timeout)
    if answer.member_ref is not None:
        return answer, "MemberId"
    identifier = (answer.identifier_system, answer.identifier_value)
    found = client.find_member(partner, identifier, idempotency_key=key, timeout=timeout)
    return replace(answer, member_ref=found), "Patient?identifier="


def _partner_code(error: PartnerError) -> str:
    return "partner-unauthorized" if isinstance(error, PartnerAuthRejected) else "partner-error"


def _after_failed_call(outcome: CallOutcome[Any], state: ExchangeState) -> StepResult:
    if outcome.dead_lettered:
        return StepResult(S.DEAD_LETTERED, done=True)
    return StepResult(state, retry_at=outcome.retry_at)


def retrieve(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    request: ExchangeRequest,
    *,
    attempt: int = 1,
    started: datetime | None = None,
) -> StepResult:
    """member_matched → retrieving → received: fetch $everything and keep it verbatim."""
    record = ports.exchanges.current(exchange_id)
    if record.state not in (S.MEMBER_MATCHED, S.RETRIEVING):
        return _stopped(record.state)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    return _retrieve(ports, record, partner, attempt, started or ports.clock())


def _retrieve(
    ports: ExchangePorts,
    record: ExchangeRecord,
    partner: Partner,
    attempt: int,
    started: datetime,
    *,
    checked: bool = False,
) -> StepResult:
    """``retrieve`` of a record in ``member_matched`` or ``retrieving``; ``checked``
    when ``_match`` has just committed ``retrieving`` with this hop's consent decision."""
    exchange_id = record.id
    if record.matched_member_ref is None:
        return _fail(
            ports,
            exchange_id,
            "no-matched-member",
            "the exchange reached retrieval without the member the old payer matched; "
            "replay it to match again",
        )
    if not checked:
        check = _check_consent(ports, record, partner, "everything")
        if check.consent is None:
            return _refused(ports, exchange_id, check)
        if record.state is S.MEMBER_MATCHED:
            _advance(ports, exchange_id, S.RETRIEVING, event=check.event, expected=record.state)
        else:  # a retried call
            ports.audit.record(check.event)
    member_ref = record.matched_member_ref
    key = idempotency_key(record, "everything")
    clock = step_clock(ports, record, "everything", attempt, started)
    way, types = read_data_path(record.data_path)

    def read(timeout: float) -> Retrieved:
        if way == SEARCH:  # the partner offers no $everything: its searches, by the member
            return ports.client.search_record(
                partner, member_ref, types, idempotency_key=key, timeout=timeout
            )
        return ports.client.everything(partner, member_ref, idempotency_key=key, timeout=timeout)

    try:
        outcome = call_partner(ports, exchange_id, partner, clock, read)
    except ConsentDenied as exc:  # the old payer refused on consent grounds
        return _block(ports, exchange_id, exc.reason, exc.text, {"by": "partner"})
    except PartnerError as exc:
        return _fail(ports, exchange_id, _partner_code(exc), exc.text, {"status": exc.status})
    if outcome.value is None:
        return _after_failed_call(outcome, S.RETRIEVING)
    body = outcome.value.content
    digest = hashlib.sha256(body).hexdigest()
    at = ports.clock()
    received = Move(
        S.RECEIVED,
        detail={
            "bytes": len(body),
            "sha256": digest,
            "pages": list(outcome.value.page_sizes),
            "read_by": way,
        },
    )
    # Normalized at once, in memory: the payload, the resources and received → normalized →
    # completed are one commit. A run cut off before it calls the partner again, under the
    # same idempotency key, as it would if cut off before a commit of the payload alone.
    normalized = _normalized(ports, exchange_id, partner, body)
    with ports.transactions.begin() as unit:
        ports.exchanges.save_payload(unit, exchange_id, body.decode(), digest, at)
        if isinstance(normalized, str):
            _advance_in(unit, ports, exchange_id, S.RECEIVED, detail=received.detail)
        else:
            _store_normalized(unit, ports, exchange_id, normalized, S.RETRIEVING, before=[received])
    if isinstance(normalized, str):
        return _fail(ports, exchange_id, "invalid-payload", normalized)
    return StepResult(S.COMPLETED, done=True)


def _normalized(
    ports: ExchangePorts, exchange_id: ExchangeId, partner: Partner, payload: bytes | str
) -> NormalizedBundle | str:
    """The received Bundle under our ids with Provenance, or why it cannot be stored."""
    try:
        return normalize_everything_bundle(
            orjson.loads(payload),
            new_id=ports.new_id,
            received_at=ports.clock(),
            us=ports.us,
            old_payer=partner.organization,
            exchange_id=exchange_id,
        )
    except (orjson.JSONDecodeError, UnicodeDecodeError, PartnerRejected) as exc:
        return exc.text if isinstance(exc, PartnerRejected) else "the Bundle is not valid JSON"


def normalize(
    ports: ExchangePorts, exchange_id: ExchangeId, request: ExchangeRequest
) -> StepResult:
    """received → normalized → completed, for an exchange whose payload was kept apart
    (a build before retrieve normalized at once, or a restart between the two)."""
    record = ports.exchanges.current(exchange_id)
    if record.state not in (S.RECEIVED, S.NORMALIZED):
        return StepResult(record.state, done=True)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    return _normalize(ports, record, partner)


def _normalize(ports: ExchangePorts, record: ExchangeRecord, partner: Partner) -> StepResult:
    exchange_id = record.id
    if record.state is S.NORMALIZED:  # stored before a restart; only the last move is missing
        _advance(ports, exchange_id, S.COMPLETED, expected=S.NORMALIZED)
        return StepResult(S.COMPLETED, done=True)
    normalized = _normalized(ports, exchange_id, partner, ports.exchanges.payload(exchange_id))
    if isinstance(normalized, str):
        return _fail(ports, exchange_id, "invalid-payload", normalized)
    with ports.transactions.begin() as unit:
        _store_normalized(unit, ports, exchange_id, normalized, S.RECEIVED)
    return StepResult(S.COMPLETED, done=True)


def _store_normalized(
    unit: UnitOfWork,
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    normalized: NormalizedBundle,
    expected: ExchangeState,
    *,
    before: Sequence[Move] = (),
) -> None:
    """The resources and → normalized → completed, in ``unit``."""
    at = ports.clock()
    _advance_in(
        unit,
        ports,
        exchange_id,
        S.NORMALIZED,
        detail={
            "resources": dict(normalized.counts),
            "skipped": dict(normalized.skipped),
            "unresolved_references": normalized.unresolved_references,
        },
        updates={
            "imported_patient_id": normalized.patient_id,
            "resource_count": sum(normalized.counts.values()),
        },
        before=before,
        then=[Move(S.COMPLETED)],
        expected=expected,
    )
    ports.writer.write(unit, normalized.resources, source=f"exchange:{exchange_id}", at=at)
    logger.info(
        "exchange completed",
        extra={"exchange_id": exchange_id, "resources": sum(normalized.counts.values())},
    )


def replay(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    *,
    actor: str,
    replay_key: str | None,
) -> bool:
    """Send a dead-lettered exchange back to ``validated`` with a fresh budget, so that the
    workflow re-checks consent and the member's identity before it asks for data again.

    Idempotent: True when this call replayed it; False when the same ``replay_key``
    already did. Any other state is a Conflict."""
    record = ports.exchanges.current(exchange_id)
    letter = ports.exchanges.dead_letter(exchange_id)
    if replay_key is not None and letter is not None and letter.replay_key == replay_key:
        return False
    if record.state is not S.DEAD_LETTERED:
        raise Conflict(
            f"exchange {exchange_id} is '{record.state}'; only dead-lettered exchanges "
            "can be replayed",
            issues=[
                Issue(
                    f"exchange {exchange_id} is '{record.state}', not 'dead_lettered'",
                    "state",
                    "business-rule",
                )
            ],
        )
    now = ports.clock()
    detail = {
        "replay": record.replay_count + 1,
        "dead_lettered_in": letter.step if letter else None,
    }
    fresh = {
        "replay_count": record.replay_count + 1,
        "deadline_at": now + timedelta(seconds=ports.retry_policy.exchange_budget_seconds),
        "attempts": 0,
        "next_attempt_at": None,
        "error_code": None,
        "error_text": None,
    }
    with ports.transactions.begin() as unit:
        ports.exchanges.mark_replayed(unit, exchange_id, by=actor, key=replay_key, at=now)
        ports.exchanges.advance(
            unit,
            exchange_id,
            [Move(S.VALIDATED, "replay", detail, fresh)],
            at=now,
            actor=actor,
            policy_version=ports.retry_policy.version,
        )
    logger.info("exchange replayed", extra={"exchange_id": exchange_id})
    return True


# States an operator may cancel from: nothing of the exchange is running in them.
_CANCELLABLE = frozenset({S.MANUAL_REVIEW, S.DEAD_LETTERED, S.BLOCKED})


def cancel(ports: ExchangePorts, exchange_id: ExchangeId, *, actor: str, note: str) -> None:
    """An operator ends an exchange that waits (on a person, a review at the old payer, a
    replay, or its next attempt): ``failed`` with ``cancelled`` and the operator's note.
    One whose step is running now is refused (Conflict): cancel it when it waits."""
    record = ports.exchanges.current(exchange_id)
    now = ports.clock()
    waiting = record.next_attempt_at is not None and record.next_attempt_at > now
    if record.state not in _CANCELLABLE and not (waiting and record.state not in STOPPED_STATES):
        raise _not_now(exchange_id, record.state, "cancelled", "while it waits")
    text = f"cancelled by an operator: {note}"
    stop = {"error_code": "cancelled", "error_text": text, "next_attempt_at": None}
    with ports.transactions.begin() as unit:
        ports.exchanges.advance(
            unit,
            exchange_id,
            [Move(S.FAILED, "cancelled", {"by": actor, "note": note}, stop)],
            at=now,
            actor=actor,
            policy_version=ports.retry_policy.version,
            expected=record.state,
        )
    logger.info("exchange cancelled", extra={"exchange_id": exchange_id})


def ask_again_now(ports: ExchangePorts, exchange_id: ExchangeId, *, actor: str) -> datetime:
    """An operator has the old payer asked again at once about a match it has under
    review, instead of at the next poll: the sweep starts the run (when it is due)."""
    record = ports.exchanges.current(exchange_id)
    if not awaits_partner_review(record):
        raise _not_now(exchange_id, record.state, "asked again", "under the old payer's review")
    now = ports.clock()
    with ports.transactions.begin() as unit:
        ports.exchanges.record_attempt(
            unit,
            exchange_id,
            step="member-match",
            attempts=record.attempts,
            next_attempt_at=now,
            step_started_at=record.step_started_at or now,
            last_error=record.last_error or "under review at the old payer",
            at=now,
            detail={"resubmitted_by": actor},
        )
    return now


def _not_now(exchange_id: ExchangeId, state: ExchangeState, verb: str, when: str) -> Conflict:
    text = f"exchange {exchange_id} is '{state}': it can be {verb} only {when}"
    return Conflict(text, issues=[Issue(text, "state", "business-rule")])


def revoke_and_stop(
    ports: ExchangePorts, consent_id: str, *, by: str, request_id: str | None
) -> tuple[StoredConsent, list[ExchangeId]]:
    """Revoke a consent now; unfinished exchanges running under it (a member's opt-in)
    move to ``blocked`` with reason ``revoked`` in the same transaction, so no step
    that starts afterwards sends anything. Returns the consent and the blocked ids."""
    now = ports.clock()
    blocked: list[ExchangeId] = []
    with ports.transactions.begin() as unit:
        revoked = revoke_consent(
            unit, ports.consents, consent_id, at=now, by=by, request_id=request_id
        )
        if revoked.role is ConsentRole.RECEIVE:
            blocked = ports.exchanges.block_under_consent(
                unit,
                consent_id,
                at=now,
                actor=by,
                reason_code="revoked",
                text="the member revoked the consent this exchange ran under",
            )
    if blocked:
        logger.info("exchanges blocked by revocation", extra={"exchanges": len(blocked)})
    return revoked, blocked
