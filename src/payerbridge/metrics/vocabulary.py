"""The label values the platform knows before anything has happened: the exchanges' states
and the reasons each may carry, the dead letters' steps and reasons, the match decisions'
outcomes and reasons, the review, bulk job, onboarding and standing pull outcomes.

Every series they name is exported at zero: the counters from a process's start
(``ProcessMetrics``), the database's gauges at every scrape (``metrics.database``). So
the first dead letter is a step from 0 to 1 that ``delta()`` sees, the first match of a
policy a step that ``rate()`` and ``increase()`` see, and a rule that compares with zero
has a sample to compare from the start (ADR 0032, amended by issue 68). A label value
outside these still counts when it comes (a new reason code, a hop): it is only not
there at zero beforehand.

A new reason an exchange can stop with, or a new match decision branch, joins the tuples
here; each is a few series per target.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from payerbridge.bulk.model import JobKind, JobStatus
from payerbridge.consent.model import DenyReason
from payerbridge.exchange.model import ExchangeState, PullKind, PullStatus
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.steps.matching import STEP as MEMBER_MATCH_STEP
from payerbridge.exchange.steps.retrieval import STEP as EVERYTHING_STEP
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE
from payerbridge.identity.matching.model import DecisionReason, MatchOutcome
from payerbridge.onboarding.model import Stage

__all__ = [
    "BULK_JOB_OUTCOMES",
    "BULK_JOB_UNFINISHED",
    "DEAD_LETTER_REASONS",
    "EXCHANGE_STEPS",
    "MATCH_POLICIES",
    "OBLIGATION_STANDINGS",
    "ONBOARDING_OUTCOMES",
    "REVIEW_OUTCOMES",
    "REVIEWED_ANSWERS",
    "VIA_ENGINE",
    "VIA_REVIEW",
    "WAIT_REASONS",
    "dead_letter_series",
    "exchange_series",
    "match_decision_series",
    "obligation_series",
]

R = ExchangeReason
S = ExchangeState

# The steps of an exchange that call a partner, and may retry and dead-letter.
EXCHANGE_STEPS = (MEMBER_MATCH_STEP, EVERYTHING_STEP)
# Why an exchange is dead-lettered: its deadline passed, or a step's attempts or budget
# ran out (those of them ``ExchangeReason`` holds).
DEAD_LETTER_REASONS: tuple[str, ...] = tuple(
    reason
    for reason in ExchangeReason
    if reason.value in ("deadline-exceeded", "attempts-exhausted", "budget-exhausted")
)
# Why an attempt waits instead of calling, or brought nothing (a retry).
WAIT_REASONS: tuple[str, ...] = (
    R.PARTNER_UNAVAILABLE,
    R.MAINTENANCE,
    R.RATE_LIMITED,
    R.CIRCUIT_OPEN,
)
_FAILURES: tuple[str, ...] = (
    R.UNKNOWN_PARTNER,
    R.NO_ROUTE,
    R.NO_MATCH,
    R.MULTIPLE_MATCHES,
    R.PARTNER_ERROR,
    R.PARTNER_UNAUTHORIZED,
    R.PARTNER_REVIEW_EXPIRED,
    R.IDENTITY_CHANGED,
    R.NO_MATCHED_MEMBER,
    R.INVALID_PAYLOAD,
    R.CANCELLED,
    R.STATE_CHANGED,
    R.INTERNAL_ERROR,
)
# The reasons an exchange in each state may carry (besides none): ``reasons.py`` says
# which state each code leads to; ``blocked`` also carries the consent's deny reasons.
_STATE_REASONS: dict[ExchangeState, tuple[str, ...]] = {
    S.VALIDATED: (R.REPLAY,),
    S.COMPLETED: (R.NOTHING_NEW,),
    S.PARTIAL: (R.INCOMPLETE,),
    S.CONFLICT: (R.CONFLICT,),
    S.BLOCKED: (R.PARTNER_REFUSED, *DenyReason),
    S.MANUAL_REVIEW: (R.PARTNER_REVIEW, R.IDENTITY_CHANGED),
    S.FAILED: _FAILURES,
    S.DEAD_LETTERED: DEAD_LETTER_REASONS,
}

# $member-match decisions: the engine's (``identity.matching.decision.decide``, one pair per
# branch) and the answers given once a reviewer has decided a case the engine opened.
MATCH_POLICIES = (SINGLE_EXCHANGE.name, BULK.name)
VIA_ENGINE = "engine"
VIA_REVIEW = "review"
_ENGINE_DECISIONS: tuple[tuple[str, str], ...] = (
    (MatchOutcome.MATCH, DecisionReason.RULE),
    (MatchOutcome.MATCH, DecisionReason.AUTO_MATCH),
    (MatchOutcome.NO_MATCH, DecisionReason.NO_CANDIDATES),
    (MatchOutcome.NO_MATCH, DecisionReason.BELOW_REVIEW_BAND),
    (MatchOutcome.NO_MATCH, DecisionReason.GUARD_VIOLATION),
    (MatchOutcome.REVIEW, DecisionReason.GUARD_VIOLATION),
    (MatchOutcome.REVIEW, DecisionReason.BELOW_AUTO_BAND),
    (MatchOutcome.REVIEW, DecisionReason.MARGIN_TOO_SMALL),
    (MatchOutcome.MULTIPLE, DecisionReason.SEVERAL_CANDIDATES_FIT),
)
# A request answered after its review case was decided: its outcome and reason.
REVIEWED_ANSWERS: dict[str, tuple[str, str]] = {
    "accepted": (MatchOutcome.MATCH, "review_accepted"),
    "rejected": (MatchOutcome.NO_MATCH, "review_rejected"),
}
REVIEW_OUTCOMES = tuple(REVIEWED_ANSWERS)

BULK_JOB_OUTCOMES: tuple[tuple[str, str], ...] = tuple(
    (kind, outcome)
    for kind in JobKind
    for outcome in ("accepted", JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
)
BULK_JOB_UNFINISHED: tuple[tuple[str, str], ...] = tuple(
    (kind, status) for kind in JobKind for status in (JobStatus.ACCEPTED, JobStatus.RUNNING)
)
ONBOARDING_OUTCOMES = ("accepted", "completed", "failed")
ONBOARDING_STAGES: tuple[str, ...] = tuple(Stage)
PULL_SCHEDULES: tuple[tuple[str, str], ...] = tuple(
    (kind, status) for kind in PullKind for status in PullStatus
)
OBLIGATION_STANDINGS = ("pending", "at_risk", "missed")


def exchange_series() -> Iterator[tuple[str, str | None]]:
    """Every (state, reason code) an exchange is known to be in: each state without a
    reason, and with each reason it may carry."""
    for state in ExchangeState:
        yield state.value, None
        for reason in _STATE_REASONS.get(state, ()):
            yield state.value, str(reason)


def dead_letter_series() -> Iterator[tuple[str, str]]:
    """Every (step, reason code) a dead letter is known to have."""
    for step in EXCHANGE_STEPS:
        for reason in DEAD_LETTER_REASONS:
            yield step, str(reason)


def match_decision_series() -> Iterator[tuple[str, str, str, str]]:
    """Every (policy, outcome, reason, via) a $member-match decision is known to have."""
    for policy in MATCH_POLICIES:
        for outcome, reason in _ENGINE_DECISIONS:
            yield policy, str(outcome), str(reason), VIA_ENGINE
        for outcome, reason in REVIEWED_ANSWERS.values():
            yield policy, str(outcome), reason, VIA_REVIEW


def obligation_series(obligations: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Every (obligation, standing) of the rule's clocks this deployment keeps."""
    for obligation in obligations:
        for standing in OBLIGATION_STANDINGS:
            yield obligation, standing
