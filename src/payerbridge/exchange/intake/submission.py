"""An exchange submitted (new-payer role): recorded once per Idempotency-Key, with the
member's opt-in it runs under; and an opt-in captured on its own, ahead of exchanges.

A submission records the exchange in ``submitted`` and says which workflow run to start;
the edge enqueues it (this room enqueues nothing), and the workflow takes it from there.
A process that dies between the two leaves the exchange in ``submitted``: a repeat of its
Idempotency-Key says to start it again, and the upkeep sweep starts it anyway.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from payerbridge.compliance.clocks import Subject
from payerbridge.consent.model import ConsentId, ConsentRole, StoredConsent
from payerbridge.consent.service import consent_recorded, record_consent
from payerbridge.errors import Issue, StoreConflict, UnprocessableRequest
from payerbridge.exchange.budgets import exchange_deadline
from payerbridge.exchange.clocks import request_events, start_request_clock, take_over_clock
from payerbridge.exchange.intake.opt_in import OptIn, opt_in_consent
from payerbridge.exchange.model import (
    ExchangeRequest,
    ExchangeStart,
    ExchangeState,
    Move,
    NewExchange,
    Stamp,
    Submission,
    transition_events,
)
from payerbridge.exchange.received.reconcile import member_key_of
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner
from payerbridge.types import ClientId, ExchangeId, MemberId, PartnerId

__all__ = [
    "ExchangeSubmission",
    "SubmittedExchange",
    "capture_opt_in",
    "opt_in_problem",
    "request_hash",
    "submit_exchange",
]

logger = logging.getLogger(__name__)


def request_hash(raw: dict[str, Any]) -> str:
    """The digest that tells a repeated submission from a different one."""
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class ExchangeSubmission:
    """A client's exchange request: as read (``request``) and as sent (``raw``, kept and
    hashed), under its Idempotency-Key (None: every submission is new)."""

    request: ExchangeRequest
    raw: dict[str, Any]
    client_id: ClientId
    idempotency_key: str | None
    request_id: str | None = None
    # A standing pull's: the obligation row it takes over, instead of starting its own.
    takes_over: Subject | None = None


@dataclass(frozen=True)
class SubmittedExchange:
    """What a submission came to: the exchange, whether this submission recorded it (else
    it repeats an Idempotency-Key), and the run to enqueue: the first, while the exchange
    still waits in ``submitted``; None once its workflow has moved it on."""

    exchange_id: ExchangeId
    is_new: bool
    start: ExchangeStart | None


def submit_exchange(command: ExchangeSubmission, uow: ExchangeUnit) -> SubmittedExchange:
    """Record a new exchange in ``submitted``, or find the one this client already
    submitted under the same Idempotency-Key; either way, say what to enqueue.

    The key reused with another body is UnprocessableRequest (422), as for every
    Idempotency-Key we honour (the IETF draft's answer; ADR 0004, amended). A twin
    submitted at the same moment waits for nothing: it gets the exchange that won."""
    client_id, idempotency_key = command.client_id, command.idempotency_key
    digest = request_hash(command.raw)
    earlier = uow.exchanges.find_by_idempotency_key(client_id, idempotency_key)
    if earlier is None:
        try:
            earlier = _record_submission(uow, command, digest)
        except StoreConflict:  # a concurrent twin under the same key committed first
            earlier = uow.exchanges.find_by_idempotency_key(client_id, idempotency_key)
            if earlier is None:
                raise
    if earlier.request_hash != digest:
        raise UnprocessableRequest(
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
            extra={"exchange_id": earlier.exchange_id, "partner_id": command.request.old_payer},
        )
        start = ExchangeStart(earlier.exchange_id, command.request.old_payer)
        return SubmittedExchange(earlier.exchange_id, True, start)
    return SubmittedExchange(earlier.exchange_id, False, _start_if_waiting(uow, earlier))


def _start_if_waiting(uow: ExchangeUnit, earlier: Submission) -> ExchangeStart | None:
    """The first run of an exchange submitted before, while it still waits in
    ``submitted``: a repeated POST may follow a crash between recording and enqueueing
    (enqueueing a run that exists attaches to it)."""
    record = uow.exchanges.current(earlier.exchange_id)
    if record.state is not ExchangeState.SUBMITTED:
        return None
    return ExchangeStart(record.id, record.partner_id)


def _record_submission(uow: ExchangeUnit, command: ExchangeSubmission, digest: str) -> Submission:
    """The exchange and its opt-in in one unit of work, with their audit events. The
    opt-in captured with the request commits with the exchange, so a submission that
    loses an Idempotency-Key race (StoreConflict) leaves no opt-in behind."""
    request, client_id, request_id = command.request, command.client_id, command.request_id
    partner = _check_partner(uow, request.old_payer)
    now = uow.clock()
    exchange_id = ExchangeId(uow.new_id())
    version = uow.retry_policy.version
    with uow:
        opt_in = _opt_in(uow, command, partner)
        uow.exchanges.create(
            NewExchange(
                exchange_id=exchange_id,
                partner_id=request.old_payer,
                client_id=client_id,
                request=command.raw,
                request_hash=digest,
                at=now,
                idempotency_key=command.idempotency_key,
                deadline_at=exchange_deadline(
                    uow, partner, now, events=request_events(uow, request, opt_in)
                ),
                policy_version=version,
                consent_id=opt_in.consent_id,
                request_id=request_id,
                member_key=member_key_of(client_id, request.member_id),
                since=request.since,
            )
        )
        if command.takes_over is not None:
            take_over_clock(uow, exchange_id, command.takes_over)
        else:
            start_request_clock(uow, exchange_id, request, opt_in)
        submitted = [Move(ExchangeState.SUBMITTED)]
        stamp = Stamp(now, client_id, version, request_id)
        uow.record(*transition_events(exchange_id, None, submitted, stamp))
    return Submission(exchange_id, True, digest)


def _check_partner(uow: ExchangeUnit, partner_id: PartnerId) -> Partner:
    partner = uow.partners.get(partner_id)
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


def _opt_in(uow: ExchangeUnit, command: ExchangeSubmission, partner: Partner) -> StoredConsent:
    """The opt-in the exchange runs under: one captured now from the request (kept in
    the unit's transaction), or one captured before, which must be this member's and
    name this old payer."""
    request, client_id, request_id = command.request, command.client_id, command.request_id
    if request.consent is not None:
        asked = OptIn(request.consent, MemberId(request.member_id), partner, client_id)
        consent = _new_opt_in(uow, asked)
        event = consent_recorded(consent, actor=client_id, request_id=request_id)
        return uow.consents.add(uow, consent, event=event)
    consent_id = request.consent_id or ""
    stored = uow.consents.get(consent_id)
    problem = opt_in_problem(stored, consent_id, client_id, request.member_id, partner)
    if problem is None:
        assert stored is not None
        return stored
    raise UnprocessableRequest(problem, issues=[Issue(problem, "consent_id", "value")])


def opt_in_problem(
    stored: StoredConsent | None,
    consent_id: str,
    client_id: ClientId,
    member_id: str,
    partner: Partner,
) -> str | None:
    """Why an opt-in captured before may not be used for asking ``partner`` about
    ``member_id`` on ``client_id``'s behalf (None: it may): it must be a member's opt-in
    of this client's, naming this old payer and given by this member."""
    if (
        stored is None
        or stored.role is not ConsentRole.RECEIVE
        or stored.record.client_id != client_id  # another client's opt-in: not yours to use
    ):
        return f"no member opt-in is recorded with id '{consent_id[:64]}'"
    if stored.partner_id != partner.id:
        return "the opt-in names another old payer than this exchange's old_payer"
    if stored.record.member_id != member_id:
        return "the opt-in was given by another member than the one on new_coverage"
    return None


def capture_opt_in(
    uow: ExchangeUnit, opt_in: OptIn, *, request_id: str | None = None
) -> StoredConsent:
    """Record a member's opt-in to the exchange with its old payer (audited); the same
    opt-in captured again returns the first record."""
    consent = _new_opt_in(uow, opt_in)
    actor = opt_in.client_id
    with uow:
        return record_consent(uow, uow.consents, consent, actor=actor, request_id=request_id)


def _new_opt_in(uow: ExchangeUnit, opt_in: OptIn) -> StoredConsent:
    consent_id = ConsentId(uow.new_id())
    return opt_in_consent(
        opt_in, consent_id=consent_id, us=uow.us, zone=uow.consent_zone, at=uow.clock()
    )
