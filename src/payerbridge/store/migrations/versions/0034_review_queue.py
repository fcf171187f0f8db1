"""identity_reviews: the queue's order (risk, due_at), a version per change, the policy,
the reasons a case was opened for and the request its reviewer compares

Cases opened before this revision are ranked from their decision's evidence, as new ones
are when they open (``identity.review_queue``); their request was not kept.

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-27 10:00:00.000000
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("risk", sa.Float(precision=53), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("due_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("policy", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("opened_because", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("request_record", sa.Text(), nullable=True))
    _rank_open_and_decided_cases()
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.alter_column("due_at", existing_type=UtcDateTime(), nullable=False)
        batch_op.create_index("ix_identity_reviews_queue", ["status", "due_at", "id"])


def _rank_open_and_decided_cases() -> None:
    reviews = sa.table(
        "identity_reviews",
        sa.column("id", sa.String()),
        sa.column("decision_id", sa.String()),
        sa.column("candidate_ids", sa.Text()),
        sa.column("opened_at", UtcDateTime()),
        sa.column("risk", sa.Float()),
        sa.column("due_at", UtcDateTime()),
        sa.column("policy", sa.String()),
        sa.column("opened_because", sa.String()),
    )
    decisions = sa.table("identity_decisions", sa.column("id"), sa.column("evidence", sa.Text()))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            reviews.c.id, reviews.c.candidate_ids, reviews.c.opened_at, decisions.c.evidence
        ).join(decisions, decisions.c.id == reviews.c.decision_id)
    ).all()
    for row in rows:
        evidence = orjson.loads(row.evidence)
        signals = signals_of_stored(evidence, orjson.loads(row.candidate_ids))
        priority = priority_of(review_risk(signals), row.opened_at)
        bind.execute(
            reviews.update()
            .where(reviews.c.id == row.id)
            .values(
                risk=priority.risk,
                due_at=priority.due_at,
                policy=signals.policy_version.rsplit("-", 1)[0] or None,
                opened_because=evidence.get("review_reason"),
            )
        )


# The ranking as ``identity.review_queue`` had it when this migration stopped importing it
# (issue 69), frozen here with the shipped policies' versions and bands and the guards of
# that time: a migration does not import code that can change under it.
_MAX_WAIT = timedelta(hours=24)
_MIN_WAIT = timedelta(hours=2)
_RIVAL_SPAN = 10.0
_RELATIVES, _RIVALS, _UNCERTAINTY = 0.4, 0.3, 0.3
_RISK_DECIMALS = 3
_MS = timedelta(milliseconds=1)
# A policy's version: (auto-match probability, review probability).
_POLICY_BANDS = {
    "single_exchange-20e8615d2d15": (0.9999, 0.5),
    "bulk-efaa5df90567": (0.99999, 0.99),
}
_HOUSEHOLD_GUARDS = frozenset(
    {
        "birth_date_conflict",
        "birth_date_missing",
        "given_name_conflict",
        "given_name_missing",
        "given_name_unconfirmed",
        "household_evidence_only",
        "younger_on_shared_ssn",
        "ssn_mismatch",
    }
)


@dataclass(frozen=True)
class _CaseSignals:
    policy_version: str
    best_weight: float | None
    runner_up_weight: float | None
    guards: tuple[str, ...]
    household_evidence: bool


@dataclass(frozen=True)
class _Priority:
    risk: float
    due_at: datetime


def signals_of_stored(evidence: Mapping[str, object], proposed: Sequence[str]) -> _CaseSignals:
    """What a case's stored evidence says about the harm of deciding it wrongly."""
    listed = evidence.get("candidates")
    found = [c for c in listed if isinstance(c, Mapping)] if isinstance(listed, list) else []
    named = [c for c in found if c.get("member") in proposed]
    best = named[0] if named else (found[0] if found else None)
    others = [_weight(c) for c in found if c is not best]
    guards = best.get("guard_violations") if best is not None else None
    version = evidence.get("policy_version")
    return _CaseSignals(
        policy_version=version if isinstance(version, str) else "",
        best_weight=None if best is None else _weight(best),
        runner_up_weight=max(others, default=None),
        guards=tuple(str(g) for g in guards) if isinstance(guards, list) else (),
        household_evidence=best is not None and bool(best.get("household_evidence")),
    )


def _weight(candidate: Mapping[str, object]) -> float:
    weight = candidate.get("match_weight")
    return float(weight) if isinstance(weight, int | float) else float("-inf")


def review_risk(signals: _CaseSignals) -> float:
    """The case's risk in [0, 1], rounded to thousandths."""
    if signals.household_evidence or _HOUSEHOLD_GUARDS.intersection(signals.guards):
        relatives = 1.0
    else:
        relatives = 0.5 if signals.guards else 0.0
    rivals = 0.0
    if signals.best_weight is not None and signals.runner_up_weight is not None:
        behind = signals.best_weight - signals.runner_up_weight
        rivals = _clamp(1.0 - behind / _RIVAL_SPAN)
    risk = _RELATIVES * relatives + _RIVALS * rivals + _UNCERTAINTY * _uncertainty(signals)
    return round(_clamp(risk), _RISK_DECIMALS)


def _uncertainty(signals: _CaseSignals) -> float:
    band = _POLICY_BANDS.get(signals.policy_version)
    weight = signals.best_weight
    if band is None or weight is None or not math.isfinite(weight):
        return 0.5
    auto, floor = (_log_odds(probability) for probability in band)
    if auto <= floor:
        return 0.5
    return _clamp((auto - weight) / (auto - floor))


def _log_odds(probability: float) -> float:
    return math.log2(probability / (1.0 - probability))


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def priority_of(risk: float, opened_at: datetime) -> _Priority:
    """Due ``_MAX_WAIT`` after it opened at risk 0, down to ``_MIN_WAIT`` at risk 1."""
    risk = round(_clamp(risk), _RISK_DECIMALS)
    wait = _MAX_WAIT - (_MAX_WAIT - _MIN_WAIT) * risk
    return _Priority(risk, opened_at + timedelta(milliseconds=round(wait / _MS)))


def downgrade() -> None:
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_reviews_queue")
        for name in ("request_record", "opened_because", "policy", "due_at", "risk", "version"):
            batch_op.drop_column(name)
