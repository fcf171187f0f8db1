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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import orjson

from payerbridge.errors import (
    AmbiguousMatch,
    Conflict,
    ConsentError,
    Issue,
    NoMatch,
    PartnerAuthRejected,
    PartnerError,
    PartnerRejected,
    UnprocessableRequest,
)
from payerbridge.exchange.model import (
    STOPPED_STATES,
    ExchangeRequest,
    ExchangeState,
    Submission,
)
from payerbridge.exchange.normalize import normalize_everything_bundle
from payerbridge.exchange.outbound import CallOutcome, StepClock, call_partner
from payerbridge.exchange.ports import ExchangePorts
from payerbridge.fhir.member_match import build_member_match_request

__all__ = [
    "StepResult",
    "Submission",
    "fail",
    "match",
    "normalize",
    "prepare",
    "replay",
    "retrieve",
    "submit_exchange",
]

logger = logging.getLogger(__name__)
S = ExchangeState
SYSTEM_ACTOR = "payerbridge"


@dataclass(frozen=True)
class StepResult:
    """Where the step left the exchange: ``done`` when no further step should run,
    ``retry_at`` when this step should run again then."""

    state: ExchangeState
    done: bool = False
    retry_at: datetime | None = None


class ExchangeRecordLike(Protocol):
    id: str
    replay_count: int
    deadline_at: datetime | None
    created_at: datetime


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
        _check_partner(ports, request.old_payer)
        now = ports.clock()
        earlier = ports.exchanges.create(
            exchange_id=ports.new_id(),
            partner_id=request.old_payer,
            client_id=client_id,
            request=raw,
            request_hash=digest,
            at=now,
            request_id=request_id,
            idempotency_key=idempotency_key,
            deadline_at=now + timedelta(seconds=ports.retry_policy.exchange_budget_seconds),
            policy_version=ports.retry_policy.version,
        )
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


def _check_partner(ports: ExchangePorts, partner_id: str) -> None:
    if ports.partners.get(partner_id) is None:
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


def fail(ports: ExchangePorts, exchange_id: str, code: str, text: str) -> StepResult:
    """Give up on an exchange (after an unexpected error); a no-op once it has stopped."""
    state = ports.exchanges.current(exchange_id).state
    if state in STOPPED_STATES:
        return StepResult(state, done=True)
    return _fail(ports, exchange_id, code, text)


def _fail(
    ports: ExchangePorts,
    exchange_id: str,
    code: str,
    text: str,
    detail: dict[str, Any] | None = None,
) -> StepResult:
    ports.exchanges.transition(
        exchange_id,
        S.FAILED,
        at=ports.clock(),
        actor=SYSTEM_ACTOR,
        reason_code=code,
        detail=detail,
        updates={"error_code": code, "error_text": text, "next_attempt_at": None},
        policy_version=ports.retry_policy.version,
    )
    logger.warning("exchange failed", extra={"exchange_id": exchange_id, "reason_code": code})
    return StepResult(S.FAILED, done=True)


def _advance(ports: ExchangePorts, exchange_id: str, target: ExchangeState, **kwargs: Any) -> None:
    updates = {"attempts": 0, "next_attempt_at": None, **kwargs.pop("updates", {})}
    ports.exchanges.transition(
        exchange_id,
        target,
        at=ports.clock(),
        actor=SYSTEM_ACTOR,
        updates=updates,
        policy_version=ports.retry_policy.version,
        **kwargs,
    )


def _stopped(state: ExchangeState) -> StepResult:
    """The exchange is past this step (a replayed step) or has stopped."""
    return StepResult(state, done=state in STOPPED_STATES)


def step_clock(
    ports: ExchangePorts, record: ExchangeRecordLike, step: str, attempt: int, started: datetime
) -> StepClock:
    deadline = record.deadline_at or record.created_at + timedelta(
        seconds=ports.retry_policy.exchange_budget_seconds
    )
    return StepClock(
        step=step,
        attempt=attempt,
        step_deadline=started + timedelta(seconds=ports.retry_policy.step_budget_seconds),
        exchange_deadline=deadline,
    )


def idempotency_key(record: ExchangeRecordLike, step: str) -> str:
    """Stable per exchange and step, so the partner recognises a retried call; a replay
    is a new request and gets its own key."""
    suffix = f":replay-{record.replay_count}" if record.replay_count else ""
    return f"{record.id}:{step}{suffix}"


def prepare(ports: ExchangePorts, exchange_id: str, request: ExchangeRequest) -> StepResult:
    """submitted → validated → consent_verified → route_selected, or blocked/failed.

    Resumes from whichever of those states a crash left it in (each transition is its
    own commit). A replayed exchange starts here from ``validated``, so consent is
    checked again."""
    state = ports.exchanges.current(exchange_id).state
    if state not in (S.SUBMITTED, S.VALIDATED, S.CONSENT_VERIFIED):
        return _stopped(state)
    if state is S.SUBMITTED:
        _advance(ports, exchange_id, S.VALIDATED)
    if state in (S.SUBMITTED, S.VALIDATED):
        blocked = _check_consent_period(ports, exchange_id, request)
        if blocked is not None:
            return blocked
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    _advance(
        ports,
        exchange_id,
        S.ROUTE_SELECTED,
        detail={"partner_id": partner.id, "endpoint": partner.fhir_base},
    )
    return StepResult(S.ROUTE_SELECTED)


def _check_consent_period(
    ports: ExchangePorts, exchange_id: str, request: ExchangeRequest
) -> StepResult | None:
    """validated → consent_verified, or → blocked (returned) when today is outside it."""
    today: date = ports.clock().date()
    consent = request.consent
    if not consent.start <= today <= consent.end:
        code = "consent-expired" if today > consent.end else "consent-not-yet-valid"
        _advance(
            ports,
            exchange_id,
            S.BLOCKED,
            reason_code=code,
            updates={
                "error_code": code,
                "error_text": "the member's consent period does not include today",
            },
        )
        return StepResult(S.BLOCKED, done=True)
    _advance(ports, exchange_id, S.CONSENT_VERIFIED, detail={"policy": consent.policy})
    return None


_MATCH_FAILURES: dict[type[Exception], str] = {
    NoMatch: "no-match",
    AmbiguousMatch: "multiple-matches",
}


def match(
    ports: ExchangePorts,
    exchange_id: str,
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
    parameters = build_member_match_request(
        request,
        our_name=ports.us.name,
        our_npi=ports.us.npi,
        partner_name=partner.name,
        partner_npi=partner.npi,
    )
    key = idempotency_key(record, "member-match")
    clock = step_clock(ports, record, "member-match", attempt, started or ports.clock())
    try:
        outcome = call_partner(
            ports,
            exchange_id,
            partner,
            clock,
            lambda timeout: ports.client.member_match(
                partner, parameters, idempotency_key=key, timeout=timeout
            ),
        )
    except (NoMatch, AmbiguousMatch, ConsentError) as exc:
        return _fail(
            ports, exchange_id, _MATCH_FAILURES.get(type(exc), "consent-refused"), exc.text
        )
    except PartnerError as exc:  # terminal: a contract error, or credentials refused twice
        return _fail(ports, exchange_id, _partner_code(exc), exc.text, {"status": exc.status})
    if outcome.value is None:
        return _after_failed_call(outcome, S.ROUTE_SELECTED)
    member_ref = outcome.value.member_ref
    if member_ref is None:
        return _fail(
            ports,
            exchange_id,
            "member-id-missing",
            "the partner returned no MemberId; identifier resolution is not supported yet",
        )
    if record.matched_member_ref is not None and record.matched_member_ref != member_ref:
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
        return StepResult(S.MANUAL_REVIEW, done=True)
    _advance(
        ports,
        exchange_id,
        S.MEMBER_MATCHED,
        updates={
            "matched_member_ref": member_ref,
            "member_identifier": outcome.value.identifier_value,
        },
    )
    return StepResult(S.MEMBER_MATCHED)


def _partner_code(error: PartnerError) -> str:
    return "partner-unauthorized" if isinstance(error, PartnerAuthRejected) else "partner-error"


def _after_failed_call(outcome: CallOutcome[Any], state: ExchangeState) -> StepResult:
    if outcome.dead_lettered:
        return StepResult(S.DEAD_LETTERED, done=True)
    return StepResult(state, retry_at=outcome.retry_at)


def retrieve(
    ports: ExchangePorts,
    exchange_id: str,
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
    if partner is None or record.matched_member_ref is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    if record.state is S.MEMBER_MATCHED:
        _advance(ports, exchange_id, S.RETRIEVING)
    member_ref = record.matched_member_ref
    key = idempotency_key(record, "everything")
    clock = step_clock(ports, record, "everything", attempt, started or ports.clock())
    try:
        outcome = call_partner(
            ports,
            exchange_id,
            partner,
            clock,
            lambda timeout: ports.client.everything(
                partner, member_ref, idempotency_key=key, timeout=timeout
            ),
        )
    except PartnerError as exc:
        return _fail(ports, exchange_id, _partner_code(exc), exc.text, {"status": exc.status})
    if outcome.value is None:
        return _after_failed_call(outcome, S.RETRIEVING)
    body = outcome.value
    digest = hashlib.sha256(body).hexdigest()
    at = ports.clock()
    _advance(
        ports,
        exchange_id,
        S.RECEIVED,
        detail={"bytes": len(body), "sha256": digest},
        also=ports.exchanges.save_payload_with(exchange_id, body.decode(), digest, at),
    )
    return StepResult(S.RECEIVED)


def normalize(ports: ExchangePorts, exchange_id: str, request: ExchangeRequest) -> StepResult:
    """received → normalized → completed: store the resources under our ids with Provenance."""
    state = ports.exchanges.current(exchange_id).state
    if state is S.NORMALIZED:  # stored before a restart; only the last transition is missing
        _advance(ports, exchange_id, S.COMPLETED)
        return StepResult(S.COMPLETED, done=True)
    if state is not S.RECEIVED:
        return StepResult(state, done=True)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    try:
        bundle = orjson.loads(ports.exchanges.payload(exchange_id))
        normalized = normalize_everything_bundle(
            bundle,
            new_id=ports.new_id,
            received_at=ports.clock(),
            us=ports.us,
            old_payer=partner.organization,
            exchange_id=exchange_id,
        )
    except (orjson.JSONDecodeError, UnicodeDecodeError, PartnerRejected) as exc:
        text = exc.text if isinstance(exc, PartnerRejected) else "the Bundle is not valid JSON"
        return _fail(ports, exchange_id, "invalid-payload", text)
    at = ports.clock()
    _advance(
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
        also=ports.writer.write_with(normalized.resources, source=f"exchange:{exchange_id}", at=at),
    )
    _advance(ports, exchange_id, S.COMPLETED)
    logger.info(
        "exchange completed",
        extra={"exchange_id": exchange_id, "resources": sum(normalized.counts.values())},
    )
    return StepResult(S.COMPLETED, done=True)


def replay(
    ports: ExchangePorts,
    exchange_id: str,
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
    ports.exchanges.transition(
        exchange_id,
        S.VALIDATED,
        at=now,
        actor=actor,
        reason_code="replay",
        detail={
            "replay": record.replay_count + 1,
            "dead_lettered_in": letter.step if letter else None,
        },
        updates={
            "replay_count": record.replay_count + 1,
            "deadline_at": now + timedelta(seconds=ports.retry_policy.exchange_budget_seconds),
            "attempts": 0,
            "next_attempt_at": None,
            "error_code": None,
            "error_text": None,
        },
        also=ports.exchanges.mark_replayed_with(exchange_id, by=actor, key=replay_key, at=now),
        policy_version=ports.retry_policy.version,
    )
    logger.info("exchange replayed", extra={"exchange_id": exchange_id})
    return True
