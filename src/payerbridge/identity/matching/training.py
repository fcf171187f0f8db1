"""Unsupervised training of a ``MatchModel``: u from random pairs, m (and lambda) by EM.

Both estimators take *iterables of comparison vectors*, so a service can
stream them from the database; each iterable is read once and reduced to
counts of distinct vectors (a few thousand at most: the product of level
counts is large, the observed patterns are few), and EM iterates over those
counts. The result depends only on the multiset of vectors, not on their order.

* ``estimate_u_probabilities``: u is the frequency of each level among random
  pairs (nearly all of them non-matches), smoothed towards the prior so that
  a level never seen (two random members with the same member id) gets a
  small u rather than zero. Each level gets at least half a pseudo-pair (the
  Jeffreys prior): a sample of 50,000 pairs cannot tell a u of 1/50,000 from
  one fifty times smaller, and without that floor a level the sample happens
  to miss (a shared birth date: 1.7 expected in 50,000 pairs) would get the
  prior's share of 1,000 pseudo-pairs, fifty times below the prior, and its
  agreement would weigh 5-6 bits more than it is worth.
* ``count_exact_agreement``: where a comparison's exact level is one field's values
  being equal (``Comparison.exact_field``: birth date, ZIP, phone), its u need not be
  sampled: the share of all pairs of members that agree is counted from how many
  members hold each value, the same estimate over every pair instead of a sample.
  The sampled u of the other levels keep their proportions.
* ``estimate_parameters_em``: expectation-maximisation over the candidate
  pairs that blocking produced, with u held fixed. Why hold u fixed and use
  the *global* prior: blocking selects pairs that agree on something, so
  among blocked pairs a household (same address, phone, subscriber id) is
  common; an EM that re-estimated u and lambda within the blocked pairs would
  learn that "same household" means "same person". Here the E-step scores each
  blocked pair exactly as matching will, household cap included, with u and
  lambda for the whole population (pairs outside the blocks are taken as
  non-matches), so family members stay unlikely and m is learned from the
  pairs that are the same person. Lambda is re-estimated as the expected number
  of matches over ``total_pair_count``. m is smoothed towards the initial
  model's m with ``prior_strength`` pseudo-matches, so a level no match ever
  reached keeps a small, finite m.

  Conflict levels (given name, birth date or suffix beyond typo tolerance)
  are the exception: the pairs that land there are mostly relatives (twins,
  a dependent using the subscriber's card), and an EM that counted them as
  matches would learn that a different first name is normal for the same
  person, which makes twins look alike, which teaches it more of the same.
  So pairs with a conflict (``RuleBook.conflicts``) are taken as
  non-matches in the E-step, and the m of conflict levels stays at the
  initial model's value: without labels the data cannot tell a typo from a
  sibling there, so the prior is the honest estimate. Where the members share no
  households (``MatchModel.relatives_unlikely``), conflicts are data errors like
  any other and EM estimates them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from payerbridge.errors import InvalidInput
from payerbridge.identity.matching.rules import RuleBook
from payerbridge.identity.matching.scoring import (
    MatchModel,
    Probabilities,
    match_weight_of,
    probability_from_weight,
)
from payerbridge.identity.matching.spec import DEFAULT_SPEC, ComparisonSpec
from payerbridge.identity.model import StandardRecord

__all__ = [
    "EmResult",
    "EmSettings",
    "count_exact_agreement",
    "count_vectors",
    "estimate_parameters_em",
    "estimate_u_probabilities",
]

_LAMBDA_BOUNDS = (1e-15, 0.5)
# Jeffreys: half a pseudo-pair per level of u, however rare the prior says it is.
_LEAST_U_PSEUDO_PAIRS = 0.5


@dataclass(frozen=True, slots=True)
class EmSettings:
    """How EM runs (``estimate_parameters_em``): the pseudo-matches the initial m are worth,
    when to stop, and whether lambda is re-estimated (only for the linkage the model
    will decide, requests against members; see the function)."""

    prior_strength: float = 10.0
    max_iterations: int = 100
    tolerance: float = 1e-6
    estimate_lambda: bool = True


DEFAULT_EM = EmSettings()


@dataclass(frozen=True, slots=True)
class EmResult:
    """A trained model and how training went."""

    model: MatchModel
    iterations: int
    converged: bool
    expected_matches: float
    candidate_pairs: int
    distinct_vectors: int


def count_vectors(vectors: Iterable[Sequence[int]]) -> list[tuple[tuple[int, ...], int]]:
    """Distinct comparison vectors with their counts, in sorted (deterministic) order."""
    return sorted(Counter(tuple(vector) for vector in vectors).items())


def _level_counts(
    spec: ComparisonSpec, patterns: list[tuple[tuple[int, ...], int]], weights: list[float]
) -> list[list[float]]:
    """Per comparison, per level (null included), the weighted count of pairs in it."""
    totals = [[0.0] * len(c.level_names) for c in spec.comparisons]
    for (vector, _), weight in zip(patterns, weights, strict=True):
        for row, level in zip(totals, vector, strict=True):
            row[level] += weight
    return totals


def _smoothed(
    counts: list[float], prior: Sequence[float], strength: float, least: float = 0.0
) -> tuple[float, ...]:
    """Non-null level frequencies pulled towards ``prior`` by ``strength`` pseudo-observations,
    of which each level gets at least ``least``."""
    pseudo = [max(strength * p, least) for p in prior]
    observed = counts[1:]
    total = sum(observed) + sum(pseudo)
    return tuple((count + extra) / total for count, extra in zip(observed, pseudo, strict=True))


def estimate_u_probabilities(
    random_pair_vectors: Iterable[Sequence[int]],
    spec: ComparisonSpec = DEFAULT_SPEC,
    *,
    prior: Probabilities | None = None,
    prior_strength: float = 1000.0,
) -> Probabilities:
    """u probabilities from the comparison vectors of randomly sampled pairs of records."""
    if prior_strength <= 0:
        raise InvalidInput("the prior strength of u must be positive")
    patterns = count_vectors(random_pair_vectors)
    if not patterns:
        raise InvalidInput("estimating u probabilities needs at least one random pair")
    _check_shape(spec, patterns)
    prior = prior or tuple(tuple(lv.u_probability for lv in c.levels) for c in spec.comparisons)
    counts = _level_counts(spec, patterns, [float(count) for _, count in patterns])
    return tuple(
        _smoothed(row, row_prior, prior_strength, _LEAST_U_PSEUDO_PAIRS)
        for row, row_prior in zip(counts, prior, strict=True)
    )


def count_exact_agreement(
    u_probabilities: Probabilities,
    records: Sequence[StandardRecord],
    spec: ComparisonSpec = DEFAULT_SPEC,
    *,
    prior_strength: float = 1000.0,
) -> Probabilities:
    """``u_probabilities`` with the exact level of each comparison that names an
    ``exact_field`` counted over every pair of ``records`` that both hold the field (pulled
    towards the spec's u by ``prior_strength`` pseudo-pairs, as sampled u are); the other
    levels scaled to keep their proportions. Comparisons that fewer than two records hold
    keep their sampled u."""
    if len(u_probabilities) != len(spec.comparisons):
        raise InvalidInput("u probabilities must have one row per comparison of the spec")
    rows = list(u_probabilities)
    for index, comparison in enumerate(spec.comparisons):
        if comparison.exact_field is None:
            continue
        value_of = attrgetter(comparison.exact_field)
        counts = Counter(value for record in records if (value := value_of(record)))
        held = sum(counts.values())
        if held < 2:
            continue
        agreeing = sum(n * (n - 1) // 2 for n in counts.values())
        pairs = held * (held - 1) // 2
        exact = comparison.level_index("exact") - 1
        prior = comparison.levels[exact].u_probability
        counted = (agreeing + prior_strength * prior) / (pairs + prior_strength)
        row = rows[index]
        scale = (1.0 - counted) / (1.0 - row[exact])
        rows[index] = tuple(counted if k == exact else u * scale for k, u in enumerate(row))
    return tuple(rows)


def estimate_parameters_em(
    candidate_vectors: Iterable[Sequence[int]],
    initial: MatchModel,
    *,
    total_pair_count: int,
    u_probabilities: Probabilities | None = None,
    settings: EmSettings = DEFAULT_EM,
) -> EmResult:
    """Estimate m and lambda by EM over blocked candidate pairs, u fixed (see module docs).

    ``total_pair_count`` is the size of the whole comparison space the
    candidates were blocked from (requests x members for linkage, n(n-1)/2
    for deduplication); it turns expected matches into lambda.
    ``u_probabilities`` (from ``estimate_u_probabilities``) replace the
    initial model's u; without them the initial u are kept.

    Re-estimate lambda (``estimate_lambda``) only when the candidates come
    from the linkage the model will decide, requests against members. Pairs
    of one deduplicated population hold (almost) no matches, so EM would drive
    lambda towards zero; train on them with ``EmSettings(estimate_lambda=False)`` and the
    initial model's lambda (1 / members for $member-match).
    """
    prior_strength, max_iterations = settings.prior_strength, settings.max_iterations
    tolerance, estimate_lambda = settings.tolerance, settings.estimate_lambda
    if prior_strength <= 0 or max_iterations < 1:
        raise InvalidInput("EM needs a positive prior strength and at least one iteration")
    patterns = _em_patterns(candidate_vectors, initial, total_pair_count)
    spec = initial.spec
    u = u_probabilities or initial.u_probabilities
    household = initial.household_pair_probability
    model = MatchModel(
        spec,
        initial.probability_two_random_records_match,
        initial.m_probabilities,
        u,
        household_pair_probability=household,
    )
    is_possible_match, fixed = _em_constraints(model, initial, patterns)
    converged, iterations, expected = False, 0, 0.0
    while iterations < max_iterations:
        iterations += 1
        posteriors = [
            count * probability_from_weight(match_weight_of(model, vector)) if possible else 0.0
            for (vector, count), possible in zip(patterns, is_possible_match, strict=True)
        ]
        expected = sum(posteriors)
        counts = _level_counts(spec, patterns, posteriors)
        m = tuple(
            _m_step(row, prior, prior_strength, row_fixed)
            for row, prior, row_fixed in zip(counts, initial.m_probabilities, fixed, strict=True)
        )
        lam = model.probability_two_random_records_match
        if estimate_lambda:
            lam = min(max(expected / total_pair_count, _LAMBDA_BOUNDS[0]), _LAMBDA_BOUNDS[1])
        change = _largest_change(model, m, lam)
        model = MatchModel(spec, lam, m, u, household_pair_probability=household)
        if change < tolerance:
            converged = True
            break
    return EmResult(
        model=model,
        iterations=iterations,
        converged=converged,
        expected_matches=expected,
        candidate_pairs=sum(count for _, count in patterns),
        distinct_vectors=len(patterns),
    )


def _em_patterns(
    candidate_vectors: Iterable[Sequence[int]], initial: MatchModel, total_pair_count: int
) -> list[tuple[tuple[int, ...], int]]:
    """The distinct comparison vectors with their counts, checked against the model's shape
    and the size of the comparison space."""
    patterns = count_vectors(candidate_vectors)
    if not patterns:
        raise InvalidInput("EM needs at least one candidate pair")
    if total_pair_count < sum(count for _, count in patterns):
        raise InvalidInput("total_pair_count must count at least the candidate pairs")
    _check_shape(initial.spec, patterns)
    return patterns


def _em_constraints(
    model: MatchModel, initial: MatchModel, patterns: Sequence[tuple[tuple[int, ...], int]]
) -> tuple[list[bool], list[dict[int, float]]]:
    """Which patterns may be matches at all, and the m each comparison keeps fixed: among
    relatives, a conflict (another first name, another generation) is no match and its m
    stays the initial model's."""
    book = RuleBook(initial.spec)
    # Among unrelated people (no households among the members) a conflict is a data error
    # like any other, and EM learns how common it is.
    relatives = not model.relatives_unlikely
    is_possible_match = [not (relatives and book.conflicts(vector)) for vector, _ in patterns]
    fixed = [
        {
            k: m
            for k, (level, m) in enumerate(zip(c.levels, row, strict=True))
            if level.is_conflict and relatives
        }
        for c, row in zip(initial.spec.comparisons, initial.m_probabilities, strict=True)
    ]
    return is_possible_match, fixed


def _m_step(
    counts: list[float], prior: Sequence[float], strength: float, fixed: dict[int, float]
) -> tuple[float, ...]:
    """m of one comparison: fixed levels keep their m, the others share the rest."""
    free = [k for k in range(len(prior)) if k not in fixed]
    share = 1.0 - sum(fixed.values())
    estimated = _smoothed([0.0, *(counts[k + 1] for k in free)], [prior[k] for k in free], strength)
    free_m = dict(zip(free, (share * m / sum(estimated) for m in estimated), strict=True))
    return tuple(fixed[k] if k in fixed else free_m[k] for k in range(len(prior)))


def _largest_change(model: MatchModel, m: Probabilities, lam: float) -> float:
    old = model.probability_two_random_records_match
    change = abs(lam - old) / old
    for before, after in zip(model.m_probabilities, m, strict=True):
        for x, y in zip(before, after, strict=True):
            change = max(change, abs(x - y))
    return change


def _check_shape(spec: ComparisonSpec, patterns: list[tuple[tuple[int, ...], int]]) -> None:
    sizes = [len(c.level_names) for c in spec.comparisons]
    for vector, _ in patterns:
        if len(vector) != len(sizes) or any(
            not 0 <= level < size for level, size in zip(vector, sizes, strict=True)
        ):
            raise InvalidInput("a comparison vector does not fit the spec")
