"""The review queue's order: oldest and riskiest first, as one total order.

Each case gets a **risk** in [0, 1] when it opens, read from its evidence:

* *relatives* (weight 0.4): the guards that stand between a member and her relatives held
  the candidate back (a twin's first name, a parent's birth date, only the household's
  identifiers agreeing, an SSN a household shares): accepting the wrong one hands a
  relative's record over. Other guards (a suffix, a card number) count half.
* *rivals* (0.3): another candidate scored close to the proposed one, so the choice is
  between people, not only yes or no; 0 when the runner-up is ``RIVAL_SPAN`` bits behind.
* *uncertainty* (0.3): how far the proposed candidate's weight sits below the policy's
  auto-match band, across the review band (near the review band: the evidence barely
  fits; near the auto band: it nearly decided alone).

A riskier case may wait less: it is **due** ``MAX_WAIT`` after it opened at risk 0, down
to ``MIN_WAIT`` at risk 1. The queue is in order of when each case is due, then its id:
of two cases of the same risk the older comes first, of two opened together the riskier,
and a low-risk case is overtaken only by cases due before it, so none waits for ever.
Risk and due time are stored with the case (the order is the database's index), so a
change of these constants orders only the cases opened after it.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from payerbridge.errors import InvalidInput, Issue
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, MatchPolicy
from payerbridge.identity.matching.model import Evidence
from payerbridge.identity.matching.rules import RELATIVE_GUARDS, SSN_MISMATCH
from payerbridge.identity.model import QueuePosition, ReviewOpening, ReviewPriority, StandardRecord

__all__ = [
    "MAX_WAIT",
    "MIN_WAIT",
    "RIVAL_SPAN",
    "CaseSignals",
    "decode_position",
    "encode_position",
    "in_queue_order",
    "policy_named",
    "priority_of",
    "review_opening",
    "review_risk",
    "signals_of",
    "signals_of_stored",
]

MAX_WAIT = timedelta(hours=24)
MIN_WAIT = timedelta(hours=2)
# Bits of match weight between the proposed candidate and the runner-up at which the
# runner-up stops being a rival (the policies' margin).
RIVAL_SPAN = 10.0
_RELATIVES, _RIVALS, _UNCERTAINTY = 0.4, 0.3, 0.3
_RISK_DECIMALS = 3
_WEIGHT_DECIMALS = 3  # as ``Evidence`` stores weights
_POLICIES = {policy.name: policy for policy in (SINGLE_EXCHANGE, BULK)}
_HOUSEHOLD_GUARDS = RELATIVE_GUARDS | {SSN_MISMATCH}
_MS = timedelta(milliseconds=1)


def policy_named(policy_version: str) -> MatchPolicy | None:
    """The shipped policy a decision's ``policy_version`` names (``single_exchange-…``)."""
    policy = _POLICIES.get(policy_version.rsplit("-", 1)[0])
    return policy if policy is not None and policy.version == policy_version else None


@dataclass(frozen=True, slots=True)
class CaseSignals:
    """What a case's evidence says about the harm of deciding it wrongly."""

    policy_version: str
    best_weight: float | None  # the proposed candidate's match weight
    runner_up_weight: float | None  # the strongest other candidate's (None: no other)
    guards: tuple[str, ...]  # the guards that held the proposed candidate back
    household_evidence: bool  # only the household's identifiers agreed


def signals_of(evidence: Evidence, proposed: Sequence[str]) -> CaseSignals:
    """The signals of a ``review`` decision's evidence; ``proposed``: the case's candidates."""
    named = [c for c in evidence.candidates if c.member_id in proposed]
    best = named[0] if named else (evidence.candidates[0] if evidence.candidates else None)
    # Rounded as evidence is stored: a case ranked from its stored evidence ranks alike.
    others = [round(c.match_weight, _WEIGHT_DECIMALS) for c in evidence.candidates if c is not best]
    return CaseSignals(
        policy_version=evidence.policy_version,
        best_weight=None if best is None else round(best.match_weight, _WEIGHT_DECIMALS),
        runner_up_weight=max(others, default=None),
        guards=() if best is None else best.guard_violations,
        household_evidence=best is not None and bool(best.household_evidence),
    )


def signals_of_stored(evidence: Mapping[str, object], proposed: Sequence[str]) -> CaseSignals:
    """``signals_of`` for evidence as stored (parsed JSON, either stored form): how the
    cases opened before they were ranked get their rank (migration 0034)."""
    listed = evidence.get("candidates")
    found = [c for c in listed if isinstance(c, Mapping)] if isinstance(listed, list) else []
    named = [c for c in found if c.get("member") in proposed]
    best = named[0] if named else (found[0] if found else None)
    others = [_weight(c) for c in found if c is not best]
    guards = best.get("guard_violations") if best is not None else None
    version = evidence.get("policy_version")
    return CaseSignals(
        policy_version=version if isinstance(version, str) else "",
        best_weight=None if best is None else _weight(best),
        runner_up_weight=max(others, default=None),
        guards=tuple(str(g) for g in guards) if isinstance(guards, list) else (),
        household_evidence=best is not None and bool(best.get("household_evidence")),
    )


def _weight(candidate: Mapping[str, object]) -> float:
    weight = candidate.get("match_weight")
    return float(weight) if isinstance(weight, int | float) else float("-inf")


def review_risk(signals: CaseSignals) -> float:
    """The case's risk in [0, 1], rounded to thousandths (see the module's docstring)."""
    if signals.household_evidence or _HOUSEHOLD_GUARDS.intersection(signals.guards):
        relatives = 1.0
    else:
        relatives = 0.5 if signals.guards else 0.0
    rivals = 0.0
    if signals.best_weight is not None and signals.runner_up_weight is not None:
        behind = signals.best_weight - signals.runner_up_weight
        rivals = _clamp(1.0 - behind / RIVAL_SPAN)
    risk = _RELATIVES * relatives + _RIVALS * rivals + _UNCERTAINTY * _uncertainty(signals)
    return round(_clamp(risk), _RISK_DECIMALS)


def _uncertainty(signals: CaseSignals) -> float:
    """Where the weight sits in the review band: 1 at its floor, 0 at the auto band; 0.5
    when the band is unknown (a policy not shipped) or nothing was weighed."""
    policy = policy_named(signals.policy_version)
    weight = signals.best_weight
    if policy is None or weight is None or not math.isfinite(weight):
        return 0.5
    auto = _log_odds(policy.auto_match_probability)
    floor = _log_odds(policy.review_probability)
    if auto <= floor:
        return 0.5
    return _clamp((auto - weight) / (auto - floor))


def _log_odds(probability: float) -> float:
    return math.log2(probability / (1.0 - probability))


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def priority_of(risk: float, opened_at: datetime) -> ReviewPriority:
    """A case of ``risk`` opened at ``opened_at`` is due ``MAX_WAIT`` later at risk 0, down
    to ``MIN_WAIT`` at risk 1."""
    risk = round(_clamp(risk), _RISK_DECIMALS)
    wait = MAX_WAIT - (MAX_WAIT - MIN_WAIT) * risk
    # Whole milliseconds: the same instant on every database.
    return ReviewPriority(risk, opened_at + timedelta(milliseconds=round(wait / _MS)))


def review_opening(
    review_id: str, request: StandardRecord, evidence: Evidence, proposed: Sequence[str]
) -> ReviewOpening:
    """The case a ``review`` decision opens, ranked from its evidence."""
    risk = review_risk(signals_of(evidence, proposed))
    return ReviewOpening(
        review_id,
        request,
        evidence.policy_version.rsplit("-", 1)[0],
        priority_of(risk, evidence.decided_at),
    )


def encode_position(position: QueuePosition) -> str:
    """An opaque page token for the page after ``position``."""
    raw = orjson.dumps([position.due_at.isoformat(), position.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(token: str) -> QueuePosition:
    """The position a page token names; InvalidInput for one we did not give out."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        due, review_id = orjson.loads(raw)
        due_at = datetime.fromisoformat(due)
        if not isinstance(review_id, str) or due_at.tzinfo is None:
            raise ValueError(token)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput(
            "the page token is not one this server gave out",
            issues=[Issue("page is not a token from a previous page's next link", "page")],
        ) from exc
    return QueuePosition(due_at, review_id)


def in_queue_order(positions: Iterable[QueuePosition]) -> list[QueuePosition]:
    """Positions in the queue's order (what the store's index gives)."""
    return sorted(positions)
