"""A review case as its reviewer sees it: the request and each candidate side by side.

Per comparison of the decision's evidence: the request's value and the candidate's, as
matching read them (standardised: folded case, digits only), the level the comparison
reached and its match weight; per candidate, the total weight against the policy's bands.

The values are demographics: the view is for reviewers only, never logged or audited
(an audit event names the case, not what it showed). An SSN is shown by its last four
digits: whether the numbers agree is the comparison's level, and a reviewer who needs
the number asks the member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from payerbridge.identity.matching.spec import DEFAULT_SPEC
from payerbridge.identity.model import StandardRecord
from payerbridge.identity.review_queue import policy_named

__all__ = ["Bands", "CandidateView", "CaseView", "FieldView", "bands_of", "case_view"]


def _joined(*values: str | None) -> str | None:
    shown = " ".join(value for value in values if value)
    return shown or None


def _birth_date(record: StandardRecord) -> str | None:
    value = record.birth_date
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if value and len(value) == 8 else value


def _ssn(record: StandardRecord) -> str | None:
    return f"***-**-{record.ssn[-4:]}" if record.ssn else None


# What each comparison of the default spec compares, as the reviewer reads it.
_SHOWN: dict[str, Callable[[StandardRecord], str | None]] = {
    "given_name": lambda r: r.first_name,
    "middle_name": lambda r: _joined(*sorted(r.middle_names | r.compound_first_name)),
    "family_name": lambda r: r.family_name,
    "birth_date": _birth_date,
    "sex": lambda r: r.sex,
    "suffix": lambda r: r.suffix,
    "member_id": lambda r: r.member_id,
    "subscriber_id": lambda r: r.subscriber_id,
    "ssn": _ssn,
    "street_address": lambda r: _joined(r.house_number, r.street, r.unit),
    "postal_code": lambda r: r.postal_code,
    "phone": lambda r: r.phone,
}
_DESCRIPTIONS = {c.name: c.description for c in DEFAULT_SPEC.comparisons}


@dataclass(frozen=True, slots=True)
class FieldView:
    """One comparison: both values, the level reached and what it weighed."""

    comparison: str
    description: str
    request: str | None
    candidate: str | None
    level: str
    match_weight: float
    household_shared: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "comparison": self.comparison,
            "description": self.description,
            "request": self.request,
            "candidate": self.candidate,
            "level": self.level,
            "match_weight": self.match_weight,
            "household_shared": self.household_shared,
        }


@dataclass(frozen=True, slots=True)
class Bands:
    """The policy's bands in match weight (bits): review from ``review``, automatic from
    ``auto``, and the margin the best candidate must lead by."""

    policy: str
    review: float
    auto: float
    margin: float

    def place(self, weight: float) -> str:
        """Where ``weight`` falls: ``below_review_band``, ``review_band`` or ``auto_band``."""
        if weight >= self.auto:
            return "auto_band"
        return "review_band" if weight >= self.review else "below_review_band"

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "review": self.review,
            "auto": self.auto,
            "margin": self.margin,
        }


@dataclass(frozen=True, slots=True)
class CandidateView:
    member_id: str
    is_proposed: bool  # one of the case's candidates: the ones a reviewer may accept
    match_weight: float
    match_probability: float
    band: str | None  # where its weight falls among the bands (None: bands unknown)
    guard_violations: tuple[str, ...]
    household_evidence: tuple[str, ...]
    own_evidence_against: tuple[str, ...]  # what of the person's own did not agree
    rule: str | None
    is_on_file: bool  # False: the member is no longer indexed (values not shown)
    fields: tuple[FieldView, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "member": self.member_id,
            "proposed": self.is_proposed,
            "match_weight": self.match_weight,
            "match_probability": self.match_probability,
            "band": self.band,
            "guard_violations": list(self.guard_violations),
            "household_evidence": list(self.household_evidence),
            "own_evidence_against": list(self.own_evidence_against),
            "rule": self.rule,
            "on_file": self.is_on_file,
            "fields": [f.to_dict() for f in self.fields],
        }


@dataclass(frozen=True, slots=True)
class CaseView:
    """The request's values, the bands and each candidate the evidence kept, the case's
    own candidates first."""

    request: dict[str, str | None]
    bands: Bands | None
    candidates: tuple[CandidateView, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "request": dict(self.request),
            "bands": None if self.bands is None else self.bands.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
        }


def bands_of(policy_version: str) -> Bands | None:
    policy = policy_named(policy_version)
    if policy is None:
        return None
    return Bands(
        policy.name,
        round(_log_odds(policy.review_probability), 3),
        round(_log_odds(policy.auto_match_probability), 3),
        policy.min_margin_weight,
    )


def _log_odds(probability: float) -> float:
    return math.log2(probability / (1.0 - probability))


def case_view(
    evidence: Mapping[str, object],
    request: StandardRecord | None,
    records: Mapping[str, StandardRecord],
    proposed: Sequence[str],
) -> CaseView:
    """The side-by-side view of a case from its decision's evidence (as ``Evidence.to_dict``
    gives it), the request as matching read it (None: a case opened before requests were
    kept) and the candidates' records now (``records``, by member id)."""
    bands = bands_of(str(evidence.get("policy_version", "")))
    names = [name for name in _SHOWN if name in _DESCRIPTIONS]
    shown_request = {name: _SHOWN[name](request) if request else None for name in names}
    candidates = [
        _candidate(found, request, records, proposed, bands)
        for found in _objects(evidence.get("candidates"))
    ]
    candidates.sort(key=lambda c: not c.is_proposed)  # stable: the evidence's rank otherwise
    return CaseView(shown_request, bands, tuple(candidates))


def _objects(value: object) -> list[Mapping[str, object]]:
    """The JSON objects of a list (evidence as stored: anything else is left out)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


def _candidate(
    found: Mapping[str, object],
    request: StandardRecord | None,
    records: Mapping[str, StandardRecord],
    proposed: Sequence[str],
    bands: Bands | None,
) -> CandidateView:
    member_id = str(found.get("member"))
    record = records.get(member_id)
    weight = _number(found.get("match_weight"))
    fields = []
    for compared in _objects(found.get("comparisons")):
        name = str(compared.get("comparison"))
        show = _SHOWN.get(name)
        fields.append(
            FieldView(
                name,
                _DESCRIPTIONS.get(name, name),
                show(request) if show and request else None,
                show(record) if show and record else None,
                str(compared.get("level")),
                _number(compared.get("match_weight")),
                bool(compared.get("household_shared")),
            )
        )
    return CandidateView(
        member_id,
        member_id in proposed,
        weight,
        _number(found.get("match_probability")),
        None if bands is None else bands.place(weight),
        _names(found.get("guard_violations")),
        _names(found.get("household_evidence")),
        _names(found.get("own_evidence_against")),
        None if found.get("rule") is None else str(found.get("rule")),
        record is not None,
        tuple(fields),
    )
