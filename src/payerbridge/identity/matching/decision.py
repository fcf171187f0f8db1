"""Match decisions: from a request and its blocked candidates to match, review, nomatch or multiple.

``decide`` scores every candidate, applies the deterministic rules and the
household guards (``rules``), and reads the result against a ``MatchPolicy``:

* a candidate *fits* the request when a rule fires for it or its
  ``match_probability`` reaches the policy's review band;
* it is *eligible* when no guard objects (given name, birth date and suffix
  do not conflict, and both name and birth date were compared), or the rule
  that fired, a guard waiver, or a population without households (the trained
  model's ``relatives_unlikely``) lifts the guards that object;
* it is *auto-acceptable* when a rule fires or its probability reaches the
  auto-match threshold.

Then:

1. no fitting candidate -> ``nomatch``;
2. two eligible fitting candidates that are both auto-acceptable, or whose
   match weights are closer than the policy margin -> ``multiple`` (HRex
   mm-8: never a pick between two people);
3. one eligible fitting candidate, auto-acceptable and ahead of every other
   candidate (eligible or not) by at least the margin -> ``match``;
   otherwise -> ``review``;
4. fitting candidates, all with guard violations -> ``review`` of the best
   one when its violations are not conflicts (a first name that is only a
   typo away, with no member id to confirm it), or when it would be
   auto-acceptable apart from a conflict (a real member with a bad typo is
   worth a reviewer's look); else ``nomatch``.

Before scoring, what the candidates show of the plan's own members is applied
(``_Sharing``): an SSN several of them hold as their own is a household's, a card
number several hold as their own is the family's card, and an SSN on the request
that a member of a candidate's household holds is no evidence against that
candidate.

The same request, candidates, model and policy always give the same decision:
candidates are ranked by match weight, then member id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import getitem

from payerbridge.errors import InvalidInput
from payerbridge.identity.matching.model import (
    BULK_POLICY,
    SINGLE_EXCHANGE_POLICY,
    CandidateEvidence,
    DecisionId,
    DecisionReason,
    Evidence,
    MatchDecision,
    MatchOutcome,
)
from payerbridge.identity.matching.rules import (
    GIVEN_NAME_UNCONFIRMED,
    HOUSEHOLD_EVIDENCE_ONLY,
    RELATIVE_GUARDS,
    SSN_MISMATCH,
    YOUNGER_ON_SHARED_SSN,
    RuleBook,
)
from payerbridge.identity.matching.scoring import (
    MatchModel,
    ScoredPair,
    comparison_vector,
    score_levels,
)
from payerbridge.identity.matching.spec import ComparisonSpec
from payerbridge.identity.model import StandardRecord
from payerbridge.types import MemberId

__all__ = ["BULK", "SINGLE_EXCHANGE", "MatchPolicy", "Matcher", "decide"]


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """Thresholds for one use of matching; ``version`` changes with any threshold.

    ``min_margin_weight`` is in bits of match weight: a margin of 10 means the
    best candidate is at least 2^10 = 1024 times likelier than the next.
    """

    name: str
    auto_match_probability: float
    review_probability: float
    min_margin_weight: float
    evidence_candidates: int = 5
    version: str = field(init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.review_probability <= self.auto_match_probability < 1.0:
            raise InvalidInput("a match policy needs 0 < review <= auto-match probability < 1")
        if self.min_margin_weight < 0 or self.evidence_candidates < 1:
            raise InvalidInput("a match policy needs a margin >= 0 and keeps >= 1 candidate")
        content = json.dumps(
            [
                self.name,
                self.auto_match_probability,
                self.review_probability,
                self.min_margin_weight,
                self.evidence_candidates,
            ]
        )
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        object.__setattr__(self, "version", f"{self.name}-{digest}")


# Single exchange: one member is waiting and a reviewer can look at one case, so
# the review band is wide (anything likelier than not) and auto-match needs odds
# of about 10,000:1 (13.3 bits over the prior).
SINGLE_EXCHANGE = MatchPolicy(
    SINGLE_EXCHANGE_POLICY,
    auto_match_probability=0.9999,
    review_probability=0.5,
    min_margin_weight=10.0,
)
# Bulk: a plan-year file of up to a million requests. Per-request error rates
# multiply by the volume and nobody looks at each answer, so auto-match needs
# odds of 100,000:1 (16.6 bits); the review band is narrow (odds of 100:1)
# because a review queue does not scale with the file. The margin is the same
# as for a single exchange: it measures ambiguity between two people, which
# does not depend on volume.
BULK = MatchPolicy(
    BULK_POLICY,
    auto_match_probability=0.99999,
    review_probability=0.99,
    min_margin_weight=10.0,
)


@dataclass(frozen=True, slots=True)
class Matcher:
    """What a decision is made by: the trained model (its m, u and prior) and the policy
    its match probabilities are read with (the thresholds and the margin)."""

    model: MatchModel
    policy: MatchPolicy


@dataclass(frozen=True, slots=True)
class _Candidate:
    member_id: MemberId
    pair: ScoredPair
    rule: str | None
    violations: tuple[str, ...]
    has_conflict: bool


_RULEBOOKS: dict[str, RuleBook] = {}


def _rulebook(spec: ComparisonSpec) -> RuleBook:
    book = _RULEBOOKS.get(spec.fingerprint)
    if book is None:
        book = _RULEBOOKS[spec.fingerprint] = RuleBook(spec)
    return book


def decide(
    request: StandardRecord,
    candidates: Sequence[tuple[MemberId, StandardRecord]],
    matcher: Matcher,
    at: datetime,
    decision_id: DecisionId,
) -> MatchDecision:
    """Decide which member, if any, the request is (see the module docstring).

    ``candidates`` come from blocking; a member listed twice counts once.
    ``at`` must be timezone-aware: it is the decision's recorded time.
    """
    if at.tzinfo is None:
        raise InvalidInput("the decision time must be timezone-aware")
    model, policy = matcher.model, matcher.policy
    book = _rulebook(model.spec)
    ranked = _rank(request, candidates, model, book, at)
    outcome, reason, chosen, named = _outcome(ranked, policy)
    best = named[0] if named else (ranked[0] if ranked else None)
    evidence = Evidence(
        decision_id=decision_id,
        outcome=outcome,
        reason=reason,
        member_id=chosen,
        rule=named[0].rule if outcome is MatchOutcome.MATCH else None,
        candidates_considered=len(ranked),
        comparisons=model.spec.names,
        candidates=_evidence_candidates(ranked, named, model, policy, book),
        prior_match_weight=model.prior_weight,
        model_version=model.version,
        spec_fingerprint=model.spec.fingerprint,
        policy_version=policy.version,
        decided_at=at,
        review_reason=(_review_reason(reason, named) if outcome is MatchOutcome.REVIEW else None),
    )
    return MatchDecision(
        decision_id=decision_id,
        outcome=outcome,
        member_id=chosen,
        candidate_ids=tuple(c.member_id for c in named) if chosen is None else (),
        match_weight=best.pair.match_weight if best else None,
        match_probability=best.pair.match_probability if best else None,
        evidence=evidence,
    )


def _distinct(
    candidates: Sequence[tuple[MemberId, StandardRecord]],
) -> list[tuple[MemberId, StandardRecord]]:
    seen: set[MemberId] = set()
    distinct = []
    for member_id, record in candidates:
        if member_id not in seen:
            seen.add(member_id)
            distinct.append((member_id, record))
    return distinct


@dataclass(frozen=True, slots=True)
class _Sharing:
    """What the plan's own members show about the request's identifiers, among the
    candidates (blocking brings every member holding the request's SSN or card number):
    an SSN several members hold as their own (none of their records says it is carried)
    is a household's, not a person's (a dependent enrolled under a parent's or a sibling's
    SSN, on a record that does not say so); a card number held
    by several members as their own is the family's card; and households (by subscriber
    id) in which some member holds the request's SSN."""

    shared_ssns: frozenset[str]
    family_card: bool
    households_with_ssn: frozenset[str]


def _sharing(
    request: StandardRecord, candidates: list[tuple[MemberId, StandardRecord]]
) -> _Sharing | None:
    """None when the candidates share nothing (the common case, and cheap)."""
    if len(candidates) < 2:
        return None
    ssns: dict[str, int] = {}
    card_holders = 0
    households: set[str] = set()
    for _, record in candidates:
        if record.ssn:
            if not record.ssn_carried:  # a carried one is its owner's: the owner holds it
                ssns[record.ssn] = ssns.get(record.ssn, 0) + 1
            if record.ssn == request.ssn and record.subscriber_id:
                households.add(record.subscriber_id)
        if request.member_id and record.member_id == request.member_id:
            card_holders += 1
    shared = frozenset(ssn for ssn, n in ssns.items() if n > 1)
    if not shared and card_holders < 2 and not households:
        return None
    return _Sharing(shared, card_holders > 1, frozenset(households))


def _levels_of(
    model: MatchModel,
    book: RuleBook,
    request: StandardRecord,
    record: StandardRecord,
    sharing: _Sharing | None,
) -> tuple[tuple[int, ...], StandardRecord]:
    """The pair's comparison levels as the plan's members tell them (see ``_Sharing``),
    and the member's record as compared."""
    if sharing is not None and record.ssn in sharing.shared_ssns and not record.ssn_carried:
        record = replace(record, ssn_carried=True)
    levels = model.population_levels(
        comparison_vector(model.spec, request, record), request, record
    )
    if sharing is None:
        return levels, record
    changed = list(levels)
    if sharing.family_card and levels[book.member_id_index] == book.member_id_exact:
        changed[book.member_id_index] = book.member_id_family_card
    if (
        levels[book.ssn_index] == book.ssn_else
        and record.subscriber_id in sharing.households_with_ssn
    ):
        # The request shows the SSN of another member of this member's household: a carried
        # SSN, no evidence either way.
        changed[book.ssn_index] = 0
    return tuple(changed), record


# Dependents are covered on a parent's plan up to this age (in the US, by law), and it is
# dependents whom plans enrol under a parent's or a sibling's SSN.
_DEPENDENT_AGE = 26


def _dependent_born_after(at: datetime) -> str:
    """The birth date (YYYYMMDD) after which a member is young enough to be a dependent."""
    return f"{at.year - _DEPENDENT_AGE:04d}{at.month:02d}{at.day:02d}"


def _may_carry_an_ssn(record: StandardRecord, at: datetime) -> bool:
    """Whether this member's SSN on file may be a relative's though the record does not say
    so: not the subscriber (whose card number is the subscriber id), and young enough to
    be a dependent (or of unknown age)."""
    if record.member_id is not None and record.member_id == record.subscriber_id:
        return False
    return record.birth_date is None or record.birth_date > _dependent_born_after(at)


def _confirmed_beside_ssn(
    book: RuleBook, levels: tuple[int, ...], request: StandardRecord, record: StandardRecord
) -> bool:
    """Whether the SSN, beside the exact birth date, confirms a first name that agrees only
    in part because it is a middle name of the person's own used as the first (Elena for
    María Elena): a recognised variant, which a twin carrying the SSN is seldom given.
    Never an initial, a typo or a dataset's variant: a twin shares the one and is named a
    letter or a variant away often enough (Mia and Mila, Katie and Kathryn)."""
    return (
        levels[book.given_index] == book.given_token
        and book.ssn_beside_own_date(levels)
        and _middle_name_as_first(request, record)
    )


def _middle_name_as_first(request: StandardRecord, record: StandardRecord) -> bool:
    """One side's first name is a middle name of the other's (Elena for María Elena), not
    the first word of a compound first name on both (María for María José)."""
    x, y = request.first_name, record.first_name
    return x != y and (x in record.middle_names or y in request.middle_names)


def _years_after(later: str | None, earlier: str | None) -> int:
    """Whole years from the birth date ``earlier`` to ``later`` (YYYYMMDD); 0 without both."""
    if not later or not earlier:
        return 0
    return int(later[:4]) - int(earlier[:4]) - (later[4:] < earlier[4:])


def _rank(
    request: StandardRecord,
    candidates: Sequence[tuple[MemberId, StandardRecord]],
    model: MatchModel,
    book: RuleBook,
    at: datetime,
) -> list[_Candidate]:
    distinct = _distinct(candidates)
    sharing = _sharing(request, distinct)
    scored = []
    for member_id, member in distinct:
        levels, record = _levels_of(model, book, request, member, sharing)
        pair = score_levels(model, levels, (request, record))
        conflicts = book.conflicts(pair.levels)
        violations = book.guard_violations(pair.levels, conflicts)
        fired = book.fired(pair.levels)
        if GIVEN_NAME_UNCONFIRMED in violations and _confirmed_beside_ssn(
            book, pair.levels, request, record
        ):
            violations = tuple(v for v in violations if v != GIVEN_NAME_UNCONFIRMED)
        if violations:
            if (
                HOUSEHOLD_EVIDENCE_ONLY in violations
                and book.younger_on_shared_ssn(pair.levels)
                and _years_after(request.birth_date, record.birth_date) >= 1
            ):
                violations = (*violations, YOUNGER_ON_SHARED_SSN)
            lifted = book.waived(pair.levels) | (fired[1] if fired else frozenset())
            if model.relatives_unlikely:
                lifted |= RELATIVE_GUARDS
            if SSN_MISMATCH in violations and _may_carry_an_ssn(record, at):
                # A dependent's SSN on file may be a sibling's or a parent's that no other
                # candidate shows to be shared: the disagreement is weighed, not a guard.
                lifted |= {SSN_MISMATCH}
            violations = tuple(v for v in violations if v not in lifted)
        scored.append(
            _Candidate(
                member_id,
                pair,
                fired[0] if fired else None,
                violations,
                bool(conflicts) and bool(violations),
            )
        )
    if not any(c.pair.levels[book.member_id_index] in book.card_holder_levels for c in scored):
        # No candidate holds the card's number: it names nobody we know (an old card, another
        # plan's, a typo), so its disagreement is weighed as evidence, not a guard. (A number
        # one typo from a candidate's own is no confirmation of a name a typo away: a
        # household's numbers are often sequential, and a twin who left the plan is no
        # longer a candidate.)
        scored = [_without(c, "member_id_mismatch") for c in scored]
    scored.sort(key=lambda c: (-c.pair.match_weight, c.member_id))
    return scored


def _without(candidate: _Candidate, guard: str) -> _Candidate:
    if guard not in candidate.violations:
        return candidate
    return replace(candidate, violations=tuple(v for v in candidate.violations if v != guard))


def _outcome(
    ranked: list[_Candidate], policy: MatchPolicy
) -> tuple[MatchOutcome, DecisionReason, MemberId | None, list[_Candidate]]:
    """(outcome, reason, matched member, candidates the decision names)."""

    def is_auto(c: _Candidate) -> bool:
        return c.rule is not None or c.pair.match_probability >= policy.auto_match_probability

    fits = [
        c
        for c in ranked
        if c.rule is not None or c.pair.match_probability >= policy.review_probability
    ]
    if not fits:
        reason = DecisionReason.BELOW_REVIEW_BAND if ranked else DecisionReason.NO_CANDIDATES
        return MatchOutcome.NO_MATCH, reason, None, []
    eligible = [c for c in fits if not c.violations]
    if not eligible:
        best_fit = fits[0]
        if not best_fit.has_conflict or is_auto(best_fit):
            return MatchOutcome.REVIEW, DecisionReason.GUARD_VIOLATION, None, [best_fit]
        return MatchOutcome.NO_MATCH, DecisionReason.GUARD_VIOLATION, None, []
    best = eligible[0]
    rivals = [
        c
        for c in eligible[1:]
        if is_auto(c) or best.pair.match_weight - c.pair.match_weight < policy.min_margin_weight
    ]
    if rivals:
        return MatchOutcome.MULTIPLE, DecisionReason.SEVERAL_CANDIDATES_FIT, None, [best, *rivals]
    if not is_auto(best):
        return MatchOutcome.REVIEW, DecisionReason.BELOW_AUTO_BAND, None, [best]
    runner_up = max((c.pair.match_weight for c in ranked if c is not best), default=float("-inf"))
    if best.pair.match_weight - runner_up < policy.min_margin_weight:
        return MatchOutcome.REVIEW, DecisionReason.MARGIN_TOO_SMALL, None, [best]
    reason = DecisionReason.RULE if best.rule is not None else DecisionReason.AUTO_MATCH
    return MatchOutcome.MATCH, reason, best.member_id, [best]


def _review_reason(reason: DecisionReason, named: list[_Candidate]) -> str:
    """``given_name_conflict, birth_date_missing``, or the band: ``below_auto_band``. (The
    candidate's evidence names the household's identifiers that agreed, where
    ``household_evidence_only`` held it back.)"""
    violations = named[0].violations if named else ()
    return ", ".join(violations) if violations else reason.value


def _evidence_candidates(
    ranked: list[_Candidate],
    named: list[_Candidate],
    model: MatchModel,
    policy: MatchPolicy,
    book: RuleBook,
) -> tuple[CandidateEvidence, ...]:
    keep = {id(c) for c in ranked[: policy.evidence_candidates]} | {id(c) for c in named}
    names, shared = model.spec.level_names, model.spec.household_shared
    return tuple(
        CandidateEvidence(
            member_id=c.member_id,
            levels=tuple(map(getitem, names, c.pair.levels)),
            match_weights=c.pair.match_weights,
            household_shared=tuple(map(getitem, shared, c.pair.levels)),
            household_adjustment=c.pair.household_adjustment,
            match_weight=c.pair.match_weight,
            match_probability=c.pair.match_probability,
            rule=c.rule,
            guard_violations=c.violations,
            household_evidence=(
                book.household_agreements(c.pair.levels)
                if HOUSEHOLD_EVIDENCE_ONLY in c.violations or GIVEN_NAME_UNCONFIRMED in c.violations
                else ()
            ),
            own_evidence_against=(
                book.own_evidence_against(c.pair.levels)
                if HOUSEHOLD_EVIDENCE_ONLY in c.violations
                else ()
            ),
        )
        for c in ranked
        if id(c) in keep
    )
