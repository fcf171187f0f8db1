"""Obligation rows (pure): for each exchange, review case and answered request, the
obligation that applies, when it started, when it is due, when it was done and why it
was held up (ADR 0037, "Obligation rows and the report").

A row is written when its clock starts, in the unit of work of the event that started
it, with its due time fixed then by the obligations file of that moment (its
``obligation_version``). It is settled (``done_at``) in the unit of work of the event
that meets it. Where it stands is decided when it is read (``standing_now``): a row not
done becomes at risk, then missed, as time passes, whatever was stored.

Subjects: an ``exchange`` (new payer: our request to the old payer, and the old payer's
answer to it as we saw it), a ``review`` case (old payer: a ``$member-match`` a person
answers), a ``request`` answered at once (old payer: the identity decision that
answered it), a ``bulk-job`` (old payer: a ``$bulk-member-match`` or payer-to-payer
export answered), an ``onboarding`` member (new payer: one member of a bulk onboarding
asked about) and an ``onboarding-chunk`` (new payer: the old payer's bulk answer to one
chunk, as we saw it).

Whose duty a row is (``Duty``, ``duty_of``): ours as the new payer asking, ours as the
old payer answering, or a partner's answer time that we only observe, never counted as
our compliance. A row still running when the member's opt-in is revoked or the member
leaves is ``closed`` with the reason (``ClockLedger.close``): no longer owed, neither
met nor missed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from payerbridge.compliance.model import (
    CLOSED_ERASED,
    CLOSED_REVOKED,
    CLOSED_WITHDRAWN,
    ObligationClock,
    Standing,
    StandingQuery,
    Subject,
    SubjectType,
    Tally,
)
from payerbridge.compliance.obligations import Assessment, ObligationSet
from payerbridge.transactions import UnitOfWork

__all__ = [
    "CLOSED_ERASED",
    "CLOSED_REVOKED",
    "CLOSED_WITHDRAWN",
    "ClockLedger",
    "ClockReader",
    "Clocks",
    "Duty",
    "ObligationClock",
    "Subject",
    "SubjectType",
    "Tally",
    "duty_of",
    "new_clock",
    "period_clock",
    "standing_now",
]


# The subjects of an answer we only observe: a partner's, as the new payer saw it.
_OBSERVED = frozenset({SubjectType.EXCHANGE, SubjectType.ONBOARDING_CHUNK})
_NEW_PAYER = frozenset(
    {SubjectType.EXCHANGE, SubjectType.PULL, SubjectType.ONBOARDING, SubjectType.ONBOARDING_CHUNK}
)


class Duty(StrEnum):
    """Whose duty a row is: ours (as the new payer asking, or as the old payer answering),
    or a partner's answer time we only observe (never our compliance, nor our miss)."""

    OURS_REQUESTING = "ours-as-new-payer"
    OURS_ANSWERING = "ours-as-old-payer"
    PARTNER_OBSERVED = "partner-observed"

    @property
    def is_ours(self) -> bool:
        return self is not Duty.PARTNER_OBSERVED


def duty_of(role: str | None, subject: SubjectType) -> Duty:
    """The duty of a row of an obligation binding ``role`` (``requester``/``responder``;
    None: the file no longer has it) about ``subject``: a responder's clock on an
    exchange or a chunk we asked about is the old payer's answer as we saw it."""
    if role == "responder":
        return Duty.PARTNER_OBSERVED if subject in _OBSERVED else Duty.OURS_ANSWERING
    if role == "requester":
        return Duty.OURS_REQUESTING
    return Duty.OURS_REQUESTING if subject in _NEW_PAYER else Duty.OURS_ANSWERING


def new_clock(
    obligations: ObligationSet,
    obligation_id: str,
    subject: Subject,
    events: Mapping[str, datetime],
    *,
    clock_id: str,
    at: datetime,
    partner_id: str | None = None,
    done_at: datetime | None = None,
) -> ObligationClock:
    """The row of ``obligation_id`` for ``subject``, started by ``events`` (the later of
    those it counts from), its due time by the obligations file of now."""
    deadline = obligations[obligation_id].deadline
    assert deadline is not None
    happened = [events[name] for name in deadline.starts.events if name in events]
    started = max(happened) if happened else at
    due = obligations.due(obligation_id, events)
    found = _assess(obligations, obligation_id, due, done_at, at)
    return ObligationClock(
        id=clock_id,
        obligation=obligation_id,
        obligation_version=obligations.version,
        subject=subject,
        partner_id=partner_id,
        started_at=started,
        due_at=due,
        done_at=done_at,
        standing=found.standing,
        reason=None,
        updated_at=at,
    )


def period_clock(
    obligations: ObligationSet,
    obligation_id: str,
    subject: Subject,
    *,
    started: datetime,
    due: datetime,
    clock_id: str,
    at: datetime,
    partner_id: str | None,
) -> ObligationClock:
    """The row of one period of a repeat (``obligation_id``), as a standing pull owes it."""
    return ObligationClock(
        id=clock_id,
        obligation=obligation_id,
        obligation_version=obligations.version,
        subject=subject,
        partner_id=partner_id,
        started_at=started,
        due_at=due,
        done_at=None,
        standing=_assess(obligations, obligation_id, due, None, at).standing,
        reason=None,
        updated_at=at,
    )


def standing_now(obligations: ObligationSet, clock: ObligationClock, now: datetime) -> Assessment:
    """Where the row stands at ``now``: from its due and done times, not its stored
    standing (a row nobody touched since it started is at risk or missed by now); a
    row closed stays closed, with its reason."""
    if clock.standing is Standing.CLOSED:
        return Assessment(
            clock.obligation, Standing.CLOSED, clock.due_at, f"closed: {clock.reason}"
        )
    return _assess(obligations, clock.obligation, clock.due_at, clock.done_at, now)


def _assess(
    obligations: ObligationSet,
    obligation_id: str,
    due: datetime | None,
    done_at: datetime | None,
    now: datetime,
) -> Assessment:
    if due is None:
        return Assessment(obligation_id, Standing.NOT_STARTED, None, "not started")
    if obligation_id not in obligations.by_id:  # a file that no longer has it: no warning
        if done_at is not None:
            met = done_at <= due
            return Assessment(obligation_id, Standing.MET if met else Standing.MISSED, due, "")
        late = now > due
        return Assessment(obligation_id, Standing.MISSED if late else Standing.PENDING, due, "")
    return obligations.standing(obligation_id, due, done_at=done_at, now=now)


class ClockLedger(Protocol):
    """Obligation rows, written in the caller's unit of work; none of these reads first."""

    def start(self, unit: UnitOfWork, clock: ObligationClock) -> None:
        """Add the row; one the subject already has for the obligation is kept as it is."""
        ...

    def start_after(self, unit: UnitOfWork, clock: ObligationClock) -> None:
        """Add the row with the partner of the subject's earlier rows (None without one);
        one the subject already has for the obligation is kept as it is."""
        ...

    def hand_over(self, unit: UnitOfWork, source: Subject, target: Subject) -> None:
        """The rows of ``source`` not done yet become ``target``'s: a standing pull's
        period taken by the exchange that pulls for it."""
        ...

    def settle_asked(self, unit: UnitOfWork, subject: Subject, *, done_at: datetime) -> None:
        """The subject's rows of the obligations met by asking (``ASKING``), done at
        ``done_at`` unless done before."""
        ...

    def settle(
        self, unit: UnitOfWork, obligation: str, subject: Subject, *, done_at: datetime
    ) -> None:
        """The subject's row of ``obligation`` done at ``done_at`` (met or missed by its due
        time), unless it was done before."""
        ...

    def note(self, unit: UnitOfWork, subject: Subject, reason: str, *, at: datetime) -> None:
        """``reason`` (a code) on each of the subject's rows not done yet."""
        ...

    def close(self, unit: UnitOfWork, subject: Subject, reason: str, *, at: datetime) -> None:
        """Each of the subject's rows not done yet ``closed`` at ``at`` with ``reason`` (a
        ``CLOSED_*`` code): no longer owed (an opt-in revoked, a member gone)."""
        ...

    def close_under_consent(
        self, unit: UnitOfWork, consent_id: str, reason: str, *, at: datetime
    ) -> None:
        """``close`` each row of what runs under the consent (its exchanges, standing
        pulls and onboarding members)."""
        ...


class ClockReader(Protocol):
    """The rows, read for the report (a plan's year is millions of them): counted where
    they are kept, listed by standing, streamed in pages. Each takes the rows started in
    [start, end), the requests answered at once among them (met, done as they started),
    and where a row stands at ``now`` as ``standing_now`` decides it: ``risk`` is how long
    before its due time a row of each obligation is at risk (``ObligationSet.risk_windows``;
    one not named never is)."""

    def tally(
        self, start: datetime, end: datetime, *, now: datetime, risk: Mapping[str, timedelta]
    ) -> Mapping[Tally, int]:
        """How many rows stand where at ``now``, by (obligation, subject type, standing,
        the row's reason code, whether it is done)."""
        ...

    def standing_rows(self, query: StandingQuery) -> list[ObligationClock]:
        """The rows ``query`` asks for, the earliest first (by started_at, then id)."""
        ...

    def started_between(
        self, start: datetime, end: datetime, *, obligation: str | None = None, page: int = 1000
    ) -> Iterator[ObligationClock]:
        """Every row (of ``obligation`` only, when given), the earliest first, read ``page``
        rows at a time."""
        ...


@dataclass(frozen=True)
class Clocks:
    """What a use case that keeps obligation rows needs: the obligations, on the plan's
    calendar, and the rows."""

    obligations: ObligationSet
    ledger: ClockLedger
