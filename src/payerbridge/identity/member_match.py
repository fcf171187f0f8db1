"""The ``$member-match`` use case (old payer): match the request to one member, decide the
Consent presented with it and keep it if it permits, all in the caller's unit of work
with the audit events that record them. The FHIR edge parses the request into a
``MemberMatchCommand`` and renders what this returns.

A refusal (no match, several, under review, a wrong-card guess, the card guard's 429, a
Consent that does not permit) is counted in the same unit, by client, reason and window:
the audit chain holds one event per window, not one per refused call (ADR 0045)."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.audit.refusals import Refusal, RefusalCounts, count_refusals, refusal_reason
from payerbridge.compliance.clocks import Clocks, Subject, SubjectType, new_clock
from payerbridge.compliance.obligations import ANSWER_WITHIN
from payerbridge.consent.model import AcceptPresentedConsent, ConsentId, PresentedConsent
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import supported_policies
from payerbridge.consent.service import accept_presented_consent
from payerbridge.errors import (
    ConsentDenied,
    MatchError,
    MatchUnderReview,
    PayerBridgeError,
    TooManyAttempts,
)
from payerbridge.identity.ports import IdentityIndex
from payerbridge.identity.service import (
    MatchedMember,
    MemberMatchCommand,
    MemberMatchRules,
    match_member,
)
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = [
    "MemberMatchAnswer",
    "MemberMatchCommand",
    "MemberMatchPorts",
    "MemberMatchRules",
    "answer_member_match",
]


@dataclass(frozen=True)
class MemberMatchPorts:
    """What answering a ``$member-match`` reads and writes through."""

    index: IdentityIndex
    consents: ConsentStore
    clocks: Clocks | None = None  # the one-business-day answer's rows (None: none kept)
    refusals: RefusalCounts[UnitOfWork] | None = None  # refused calls counted (ADR 0045)


@dataclass(frozen=True)
class MemberMatchAnswer:
    """The member matched, or why not: ``refusal``, a MatchError or the presented
    consent's ConsentDenied (HRex mm-11, no member id goes out), an answer like a match
    (kept for a retry under the same Idempotency-Key); or ``throttled``, TooManyAttempts
    (429, mm-7), which is not: the same request may be answered once the window moves."""

    matched: MatchedMember | None
    refusal: MatchError | ConsentDenied | None = None
    throttled: TooManyAttempts | None = None


def answer_member_match(
    command: MemberMatchCommand, unit: UnitOfWork, ports: MemberMatchPorts
) -> MemberMatchAnswer:
    """Answer one ``$member-match`` in ``unit``: the match's writes, the presented
    consent's and the audit events of both commit together, whatever the answer (an
    attempt over the limit writes the attempt only); a refusal is counted with them."""
    answer = _answer(command, unit, ports)
    refused = answer.refusal or answer.throttled
    if refused is not None:
        _count_refused(ports, unit, command, refused)
    return answer


def _count_refused(
    ports: MemberMatchPorts,
    unit: UnitOfWork,
    command: MemberMatchCommand,
    refused: PayerBridgeError,
) -> None:
    """Count a refused ``$member-match`` in ``unit`` (ADR 0045)."""
    if ports.refusals is None:
        return
    refusal = Refusal(
        command.requester.client_id, "member-match", refusal_reason(refused), unit.now
    )
    count_refusals(ports.refusals, unit, [refusal], length=command.rules.refusal_window)


def _answer(
    command: MemberMatchCommand, unit: UnitOfWork, ports: MemberMatchPorts
) -> MemberMatchAnswer:
    matched = match_member(command, unit, ports.index)
    if isinstance(matched, TooManyAttempts):
        return MemberMatchAnswer(None, throttled=matched)
    if isinstance(matched, MatchError):
        _keep_answer_clock(unit, ports, matched)
        return MemberMatchAnswer(None, refusal=matched)
    _keep_answer_clock(unit, ports, matched)
    if command.presented is None:
        return MemberMatchAnswer(matched)
    return _with_presented_consent(matched, command.presented, command, unit, ports)


def _keep_answer_clock(
    unit: UnitOfWork, ports: MemberMatchPorts, answer: MatchedMember | MatchError
) -> None:
    """The one-business-day answer's row of a request that waits for a reviewer, one
    insert in ``unit`` (no read), kept once however often the request is asked again and
    met when its case is decided. A request answered at once needs no row: its identity
    decision says when (``store.obligation_clocks`` reads it as met)."""
    if ports.clocks is None or not isinstance(answer, MatchUnderReview):
        return
    if answer.review_id is None:
        return
    clock = new_clock(
        ports.clocks.obligations,
        ANSWER_WITHIN,
        Subject(SubjectType.REVIEW, answer.review_id),
        {"request_received": unit.now},
        clock_id=unit.new_id(),
        at=unit.now,
    )
    ports.clocks.ledger.start(unit, clock)


def _with_presented_consent(
    matched: MatchedMember,
    presented: PresentedConsent,
    command: MemberMatchCommand,
    unit: UnitOfWork,
    ports: MemberMatchPorts,
) -> MemberMatchAnswer:
    """The answer once the Consent presented with the request is decided for the matched
    member, and kept if it permits; one that does not refuses the match (HRex mm-11)."""
    member_id = MemberId(matched.member_id)
    disclosure = accept_presented_consent(
        unit,
        ports.consents,
        AcceptPresentedConsent(
            presented,
            consent_id=ConsentId(unit.new_id()),
            member_id=member_id,
            requester=command.requester,
            at=unit.now,
            source_npi=command.rules.source_npi,
            supported_policies=supported_policies(
                ports.index.match_writes(unit).resource_types(member_id)
            ),
            request_id=command.request_id,
            detail={"idempotency_key": command.idempotency_key},
        ),
    )
    unit.record(disclosure.event)
    if not disclosure.decision.permitted:
        try:
            disclosure.require(data_access=False)
        except ConsentDenied as denied:
            return MemberMatchAnswer(None, refusal=denied)
    return MemberMatchAnswer(matched)
