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
from payerbridge.onboarding.ports import OnboardingPorts
from payerbridge.transactions import UnitOfWork

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
    unit: UnitOfWork,
    ports: OnboardingPorts,
    onboarding_id: str,
    partner_id: str,
    members: Sequence[tuple[int, ExchangeRequest, StoredConsent]],
) -> None:
    """Each member's request row, as the onboarding is accepted in ``unit``."""
    if ports.clocks is None:
        return
    obligations = ports.clocks.obligations
    for position, request, opt_in in members:
        opted_in = opt_in.record.period_start
        covered = day_start(request.new_coverage.start, obligations.calendar.tz)
        clock = new_clock(
            obligations,
            REQUEST_AFTER_ENROLMENT,
            member_subject(onboarding_id, position),
            {"opt_in": opted_in, "coverage_start": covered or opted_in},
            clock_id=unit.new_id(),
            at=unit.now,
            partner_id=partner_id,
        )
        ports.clocks.ledger.start(unit, clock)


@dataclass(frozen=True)
class MatchAnswered:
    """The old payer ``partner_id`` answered the chunk's ``$bulk-member-match`` at ``at``
    about the members at ``positions``; ``data_follows``: an export of their data is next."""

    chunk: Chunk
    partner_id: str
    positions: Iterable[int]
    at: datetime
    data_follows: bool


def members_asked(unit: UnitOfWork, ports: OnboardingPorts, answered: MatchAnswered) -> None:
    """Each member asked about is asked; the old payer's answer clock for the chunk starts
    (done at once when no data follows)."""
    if ports.clocks is None:
        return
    chunk, at = answered.chunk, answered.at
    ledger = ports.clocks.ledger
    for position in answered.positions:
        ledger.settle_asked(unit, member_subject(chunk.onboarding_id, position), done_at=at)
    clock = new_clock(
        ports.clocks.obligations,
        ANSWER_WITHIN,
        _chunk_subject(chunk),
        {"request_received": at},
        clock_id=unit.new_id(),
        at=at,
        partner_id=answered.partner_id,
        done_at=None if answered.data_follows else at,
    )
    ledger.start(unit, clock)


def members_withdrawn(
    unit: UnitOfWork,
    ports: OnboardingPorts,
    onboarding_id: str,
    positions: Iterable[int],
    at: datetime,
) -> None:
    """Members whose opt-in no longer lets us ask: their rows are no longer owed."""
    if ports.clocks is None:
        return
    for position in positions:
        subject = member_subject(onboarding_id, position)
        ports.clocks.ledger.close(unit, subject, CLOSED_REVOKED, at=at)


def chunk_answered(unit: UnitOfWork, ports: OnboardingPorts, chunk: Chunk, at: datetime) -> None:
    """The chunk's exported data was received at ``at``."""
    if ports.clocks is not None:
        ports.clocks.ledger.settle(unit, ANSWER_WITHIN, _chunk_subject(chunk), done_at=at)
