"""The matching engine's data: a decision (``MatchDecision``) and its evidence
(``Evidence``), free of PHI, with the form a decision's row keeps (``Evidence.to_stored``)
and the form shown (``evidence_from_stored``); a trained model as it is kept
(``StoredModel``); the match policies' names, as decisions' ``policy_version`` begins.

No logic beyond each type's own form: ``decision`` and ``scoring`` make them, the stores
keep them (``store.identity``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from payerbridge.types import MemberId

__all__ = [
    "BULK_POLICY",
    "SINGLE_EXCHANGE_POLICY",
    "CandidateEvidence",
    "DecisionId",
    "DecisionReason",
    "Evidence",
    "MatchDecision",
    "MatchOutcome",
    "StoredModel",
    "evidence_from_stored",
]

# The match policies' names (``identity.matching.decision``): a decision's ``policy_version`` is
# ``<name>-<digest>``, a review case's ``policy`` the name.
SINGLE_EXCHANGE_POLICY = "single_exchange"
BULK_POLICY = "bulk"


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A trained model as it is kept: ``MatchModel.to_json()`` (``body``) under its version,
    for the comparison spec it was trained under, with what it was trained on (counts,
    no PHI)."""

    version: str
    spec_fingerprint: str
    body: str
    trained_on: int
    summary: Mapping[str, Any]


# The id of one match decision; evidence is retrievable by it.
DecisionId = NewType("DecisionId", str)

_WEIGHT_DECIMALS = 3


class MatchOutcome(StrEnum):
    MATCH = "match"
    REVIEW = "review"
    NO_MATCH = "nomatch"
    MULTIPLE = "multiple"


class DecisionReason(StrEnum):
    """Why the decision came out as it did (one per branch of ``decision.decide``)."""

    RULE = "rule"
    AUTO_MATCH = "auto_match"
    NO_CANDIDATES = "no_candidates"
    BELOW_REVIEW_BAND = "below_review_band"
    BELOW_AUTO_BAND = "below_auto_band"
    MARGIN_TOO_SMALL = "margin_too_small"
    SEVERAL_CANDIDATES_FIT = "several_candidates_fit"
    GUARD_VIOLATION = "guard_violation"


@dataclass(frozen=True, slots=True)
class CandidateEvidence:
    """How one candidate member scored against the request.

    ``levels``, ``match_weights`` and ``household_shared`` hold one entry per
    comparison, in the order of ``Evidence.comparisons``: the level reached,
    its match weight (before the household cap) and whether it is household
    evidence. Parallel tuples rather than one object per comparison, because
    evidence is built for every decision of a million-request batch.
    """

    member_id: MemberId
    levels: tuple[str, ...]
    match_weights: tuple[float, ...]
    household_shared: tuple[bool, ...]
    household_adjustment: float
    match_weight: float
    match_probability: float
    rule: str | None
    guard_violations: tuple[str, ...]
    # With the guards ``household_evidence_only`` or ``given_name_unconfirmed``: the
    # identifiers a household shares that agreed (``ssn``, ``family_name``,
    # ``street_address``...), by comparison name: what held the pair together.
    household_evidence: tuple[str, ...] = ()
    # With it too: the person's own evidence that disagreed or did not confirm her
    # (``given_name``, ``birth_date``), by comparison name.
    own_evidence_against: tuple[str, ...] = ()

    def to_dict(self, comparisons: tuple[str, ...]) -> dict[str, object]:
        return self._document(
            {
                "comparisons": _comparison_objects(
                    comparisons, self.levels, self._weights(), self.household_shared
                )
            }
        )

    def to_stored(self) -> dict[str, object]:
        """``to_dict`` with the comparisons as parallel lists, named by ``Evidence.to_stored``."""
        return self._document(
            {
                "levels": self.levels,
                "match_weights": self._weights(),
                "household_shared": self.household_shared,
            }
        )

    def _weights(self) -> list[float]:
        return [round(weight, _WEIGHT_DECIMALS) for weight in self.match_weights]

    def _document(self, comparisons: dict[str, object]) -> dict[str, object]:
        """The candidate with ``comparisons``, its comparisons in either form, in place."""
        return {
            "member": self.member_id,
            **comparisons,
            "household_adjustment": round(self.household_adjustment, _WEIGHT_DECIMALS),
            "match_weight": round(self.match_weight, _WEIGHT_DECIMALS),
            "match_probability": self.match_probability,
            "rule": self.rule,
            "guard_violations": list(self.guard_violations),
            "household_evidence": list(self.household_evidence),
            "own_evidence_against": list(self.own_evidence_against),
        }


def _comparison_objects(
    names: Sequence[str], levels: Sequence[str], weights: Sequence[float], shared: Sequence[bool]
) -> list[dict[str, object]]:
    """One object per comparison, as evidence is shown."""
    return [
        {"comparison": name, "level": level, "match_weight": weight, "household_shared": flag}
        for name, level, weight, flag in zip(names, levels, weights, shared, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything needed to explain one decision, and nothing that identifies a person.

    ``candidates`` are the strongest candidates (as many as the policy keeps,
    plus any the decision names); ``candidates_considered`` counts them all.
    ``comparisons`` names the comparisons, in the order of each candidate's levels.
    """

    decision_id: DecisionId
    outcome: MatchOutcome
    reason: DecisionReason
    member_id: MemberId | None
    rule: str | None
    candidates_considered: int
    comparisons: tuple[str, ...]
    candidates: tuple[CandidateEvidence, ...]
    prior_match_weight: float
    model_version: str
    spec_fingerprint: str
    policy_version: str
    decided_at: datetime
    # A review's reason at a glance: the guards that held the candidate back, or the band
    # its weight fell in (``below_auto_band``, ``margin_too_small``).
    review_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (ISO timestamp, rounded weights), stable field names."""
        return self._document(
            {"candidates": [c.to_dict(self.comparisons) for c in self.candidates]}
        )

    def to_stored(self) -> dict[str, object]:
        """The form a decision's row keeps: ``to_dict`` with the comparisons named once and
        each candidate's levels, weights and household flags as parallel lists
        (``evidence_from_stored`` gives ``to_dict`` back). A decision is written for every
        request, and one object per comparison per candidate was most of its bytes and of
        the time spent writing it (ADR 0022)."""
        return self._document(
            {
                "comparisons": self.comparisons,
                "candidates": [c.to_stored() for c in self.candidates],
            }
        )

    def _document(self, candidates: dict[str, object]) -> dict[str, object]:
        """The evidence with ``candidates``, the candidates' part in either form, in place."""
        return {
            "review_reason": self.review_reason,
            "decision": self.decision_id,
            "outcome": self.outcome.value,
            "reason": self.reason.value,
            "member": self.member_id,
            "rule": self.rule,
            "candidates_considered": self.candidates_considered,
            **candidates,
            "prior_match_weight": round(self.prior_match_weight, _WEIGHT_DECIMALS),
            "model_version": self.model_version,
            "spec_fingerprint": self.spec_fingerprint,
            "policy_version": self.policy_version,
            "decided_at": self.decided_at.isoformat(),
        }


# The parallel lists of a stored candidate, read back into one object per comparison.
_STORED_COMPARISONS = ("levels", "match_weights", "household_shared")


def evidence_from_stored(stored: dict[str, Any]) -> dict[str, Any]:
    """``Evidence.to_dict`` of evidence as ``Evidence.to_stored`` left it (parsed JSON).
    Evidence stored whole, as decisions were before the stored form, is that already."""
    names = stored.get("comparisons")
    if names is None:
        return stored
    shown: dict[str, Any] = {}
    for key, value in stored.items():
        if key == "candidates":
            shown[key] = [_candidate_from_stored(names, candidate) for candidate in value]
        elif key != "comparisons":
            shown[key] = value
    return shown


def _candidate_from_stored(names: list[str], stored: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, value in stored.items():
        if key == "levels":
            shown["comparisons"] = _comparison_objects(
                names, value, stored["match_weights"], stored["household_shared"]
            )
        elif key not in _STORED_COMPARISONS:
            shown[key] = value
    return shown


@dataclass(frozen=True, slots=True)
class MatchDecision:
    """The outcome and the ids it names; ``evidence`` explains it.

    ``member_id`` is set for ``match`` only. ``candidate_ids`` names the member
    to review (``review``) or the members that fit (``multiple``).
    """

    decision_id: DecisionId
    outcome: MatchOutcome
    member_id: MemberId | None
    candidate_ids: tuple[MemberId, ...]
    match_weight: float | None
    match_probability: float | None
    evidence: Evidence
