"""The new payer's obligation rows for a bulk onboarding (ADR 0037, amendment), on the
same clocks as a single member's exchange (``exchange.clocks``):

- each member's ``request-after-enrolment`` (subject ``onboarding``, ``<run>:<position>``)
  starts as the onboarding is accepted, at the later of the new coverage's start (the
  first instant of that day in the plan's zone) and the member's opt-in, and is met when
  **we asked**: the old payer's answer to the chunk's ``$bulk-member-match`` is read;
- the old payer's ``answer-within-one-business-day`` for the chunk, as we see it
  (subject ``onboarding-chunk``, ``<run>:<chunk>``, observed, never our duty), starts
  then and is met when the chunk's exported data is received (at once when no member
  matched: there is no data to wait for);
- a member whose opt-in was revoked or lapsed before it was asked about (``withdrawn``)
  is no longer owed: its row is closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from payerbridge.compliance.clocks import CLOSED_REVOKED, Subject, SubjectType, new_clock
from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.consent.model import StoredConsent
from payerbridge.exchange.clocks import day_start
from payerbridge.exchange.model import ExchangeRequest
from payerbridge.onboarding.model import Chunk
from payerbridge.onboarding.unit import OnboardingUnit

__all__ = [
    "MatchAnswered",
    "chunk_answered",
    "member_subject",
    "members_asked",
    "members_withdrawn",
    "start_member_clocks",
]


def member_subject(onboarding_id: str, position: int) -> Subject:
    return Subject(SubjectType.ONBOARDING, f"{onboarding_id}:{position}")


def _chunk_subject(chunk: Chunk) -> Subject:
    return Subject(SubjectType.ONBOARDING_CHUNK, f"{chunk.onboarding_id}:{chunk.number}")


def start_member_clocks(
    uow: OnboardingUnit,
    onboarding_id: str,
    partner_id: str,
    members: Sequence[tuple[int, ExchangeRequest, StoredConsent]],
) -> None:
    """Each member's request row, as the onboarding is accepted in ``uow``'s transaction."""
    if uow.clocks is None:
        return
    obligations = uow.clocks.obligations
    for position, request, opt_in in members:
        opted_in = opt_in.record.period_start
        covered = day_start(request.new_coverage.start, obligations.calendar.tz)
        clock = new_clock(
            obligations,
            REQUEST_AFTER_ENROLMENT,
            member_subject(onboarding_id, position),
            {"opt_in": opted_in, "coverage_start": covered or opted_in},
            clock_id=uow.new_id(),
            at=uow.now,
            partner_id=partner_id,
        )
        uow.clocks.ledger.start(uow, clock)


@dataclass(frozen=True)
class MatchAnswered:
    """The old payer ``partner_id`` answered the chunk's ``$bulk-member-match`` at ``at``
    about the members at ``positions``; ``data_follows``: an export of their data is next."""

    chunk: Chunk
    partner_id: str
    positions: Iterable[int]
    at: datetime
    data_follows: bool


def members_asked(uow: OnboardingUnit, answered: MatchAnswered) -> None:
    """Each member asked about is asked; the old payer's answer clock for the chunk starts
    (done at once when no data follows)."""
    if uow.clocks is None:
        return
    chunk, at = answered.chunk, answered.at
    ledger = uow.clocks.ledger
    for position in answered.positions:
        ledger.settle_asked(uow, member_subject(chunk.onboarding_id, position), done_at=at)
    clock = new_clock(
        uow.clocks.obligations,
        ANSWER_WITHIN,
        _chunk_subject(chunk),
        {"request_received": at},
        clock_id=uow.new_id(),
        at=at,
        partner_id=answered.partner_id,
        done_at=None if answered.data_follows else at,
    )
    ledger.start(uow, clock)


def members_withdrawn(
    uow: OnboardingUnit, onboarding_id: str, positions: Iterable[int], at: datetime
) -> None:
    """Members whose opt-in no longer lets us ask: their rows are no longer owed."""
    if uow.clocks is None:
        return
    for position in positions:
        subject = member_subject(onboarding_id, position)
        uow.clocks.ledger.close(uow, subject, CLOSED_REVOKED, at=at)


def chunk_answered(uow: OnboardingUnit, chunk: Chunk, at: datetime) -> None:
    """The chunk's exported data was received at ``at``."""
    if uow.clocks is not None:
        uow.clocks.ledger.settle(uow, ANSWER_WITHIN, _chunk_subject(chunk), done_at=at)
