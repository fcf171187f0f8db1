"""Unsupervised training: u from random pairs, m and lambda by EM, on a seeded synthetic payer."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.matching.decision import (
    BULK,
    SINGLE_EXCHANGE,
    Matcher,
    MatchPolicy,
    decide,
)
from payerbridge.identity.matching.model import DecisionId, MatchOutcome
from payerbridge.identity.matching.scoring import MatchModel, comparison_vector, default_model
from payerbridge.identity.matching.spec import DEFAULT_SPEC
from payerbridge.identity.matching.training import (
    EmResult,
    EmSettings,
    count_vectors,
    estimate_parameters_em,
    estimate_u_probabilities,
)
from payerbridge.identity.model import StandardRecord
from payerbridge.types import MemberId
from payerbridge_tools.bench.identity_data import generate_identity_set

SECRET = b"test-blocking-secret"


@dataclass
class Linkage:
    members: dict[MemberId, StandardRecord]
    requests: list[tuple[StandardRecord, MemberId | None, list[MemberId]]]
    candidate_vectors: list[tuple[int, ...]]
    random_vectors: list[tuple[int, ...]]
    initial: MatchModel
    result: EmResult


@pytest.fixture(scope="module")
def linkage() -> Linkage:
    """~4,000 members in households, 1,000 noisy requests about members, 150 about others
    (from the synthetic payer-migration set the identity benchmark uses)."""
    data = generate_identity_set(4_000, seed=7, requests=1_150, non_member_share=150 / 1_150)
    members = {
        data.member_id(i): standard_record(Demographics(**data.member_fields(i)))
        for i in range(data.member_count)
    }
    index: dict[str, list[MemberId]] = defaultdict(list)
    for member_id, record in members.items():
        for key in blocking_keys(record, secret=SECRET):
            index[key].append(member_id)
    requests = []
    for j in range(data.request_count):
        record = standard_record(Demographics(**data.request_fields(j)))
        found = {m for key in blocking_keys(record, secret=SECRET) for m in index.get(key, ())}
        requests.append((record, data.truth_of(j), sorted(found)))
    candidate_vectors = [
        comparison_vector(DEFAULT_SPEC, record, members[m])
        for record, _, found in requests
        for m in found
    ]
    rng = random.Random(9)
    ids = sorted(members)
    random_vectors = [
        comparison_vector(DEFAULT_SPEC, rng.choice(requests)[0], members[rng.choice(ids)])
        for _ in range(30_000)
    ]
    initial = default_model(probability_two_random_records_match=1 / len(members))
    result = estimate_parameters_em(
        candidate_vectors,
        initial,
        total_pair_count=len(requests) * len(members),
        u_probabilities=estimate_u_probabilities(random_vectors),
    )
    return Linkage(members, requests, candidate_vectors, random_vectors, initial, result)


def _m_and_u(model: MatchModel, comparison: str, level: str) -> tuple[float, float]:
    index = DEFAULT_SPEC.index(comparison)
    k = DEFAULT_SPEC.comparisons[index].level_index(level) - 1
    return model.m_probabilities[index][k], model.u_probabilities[index][k]


def test_blocking_finds_nearly_every_true_member(linkage: Linkage) -> None:
    about_members = [(truth, found) for _, truth, found in linkage.requests if truth]
    missed = sum(truth not in found for truth, found in about_members)
    assert missed / len(about_members) < 0.005
    assert max(len(found) for _, _, found in linkage.requests) < 40


def test_em_converges_and_lambda_counts_the_members_asked_about(linkage: Linkage) -> None:
    result = linkage.result
    assert result.converged and result.iterations < 50
    assert result.candidate_pairs == len(linkage.candidate_vectors)
    # 1,000 requests are about members; EM should expect about that many matches.
    assert 900 < result.expected_matches < 1100


@pytest.mark.parametrize(
    ("comparison", "level"),
    [
        ("given_name", "exact"),
        ("given_name", "nickname"),
        ("family_name", "exact"),
        ("birth_date", "exact"),
        ("birth_date", "one_typo"),
        ("sex", "exact"),
        ("member_id", "exact"),
        ("subscriber_id", "exact"),
        ("ssn", "exact"),
        ("street_address", "exact"),
        ("postal_code", "exact"),
        ("phone", "exact"),
    ],
)
def test_em_recovers_m_above_u_for_agreeing_levels(
    linkage: Linkage, comparison: str, level: str
) -> None:
    m, u = _m_and_u(linkage.result.model, comparison, level)
    assert m > u


def test_em_learns_from_the_data(linkage: Linkage) -> None:
    model, initial = linkage.result.model, linkage.initial
    # The synthetic requests carry a member id that is the subscriber's about as often as
    # the generator makes them (15% of dependents' requests); the prior said 5%.
    m, _ = _m_and_u(model, "member_id", "is_subscriber_id")
    assert 0.06 < m < 0.2
    # u is what random pairs of this population show, not the prior: here a few hundred
    # surnames, so about one random pair in two hundred shares one (the prior said 1%).
    _, u = _m_and_u(model, "family_name", "exact")
    column = DEFAULT_SPEC.index("family_name")
    exact = DEFAULT_SPEC.comparisons[column].level_index("exact")
    shared = sum(v[column] == exact for v in linkage.random_vectors) / len(linkage.random_vectors)
    assert u == pytest.approx(shared, rel=0.1)
    assert u != pytest.approx(_m_and_u(initial, "family_name", "exact")[1], rel=0.2)


def test_conflict_levels_keep_their_prior_m(linkage: Linkage) -> None:
    """Twins and dependents on the subscriber's card must not teach EM that names may differ."""
    for comparison in ("given_name", "birth_date", "suffix"):
        assert _m_and_u(linkage.result.model, comparison, "else")[0] == pytest.approx(
            _m_and_u(linkage.initial, comparison, "else")[0]
        )


def test_em_is_deterministic_and_order_independent(linkage: Linkage) -> None:
    shuffled = list(linkage.candidate_vectors)
    random.Random(1).shuffle(shuffled)
    again = estimate_parameters_em(
        iter(shuffled),
        linkage.initial,
        total_pair_count=len(linkage.requests) * len(linkage.members),
        u_probabilities=estimate_u_probabilities(reversed(linkage.random_vectors)),
    )
    assert again.model.version == linkage.result.model.version


def _outcomes(linkage: Linkage, policy: MatchPolicy) -> dict[str, int]:
    """Counts of right and wrong auto-matches and of reviews, over requests about members."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    counts = {"about_members": 0, "right_match": 0, "wrong_match": 0, "review": 0}
    for record, truth, found in linkage.requests:
        candidates = [(m, linkage.members[m]) for m in found]
        decision = decide(
            record, candidates, Matcher(linkage.result.model, policy), at, DecisionId("d")
        )
        counts["about_members"] += truth is not None
        if decision.outcome is MatchOutcome.MATCH:
            counts["right_match" if decision.member_id == truth else "wrong_match"] += 1
        counts["review"] += decision.outcome is MatchOutcome.REVIEW and truth is not None
    return counts


@pytest.mark.parametrize("policy", [SINGLE_EXCHANGE, BULK])
def test_trained_model_never_auto_matches_the_wrong_member(
    linkage: Linkage, policy: MatchPolicy
) -> None:
    """Relatives, namesakes and non-members (some of them members' twins) are never matched."""
    assert _outcomes(linkage, policy)["wrong_match"] == 0


def test_trained_model_finds_the_members(linkage: Linkage) -> None:
    single = _outcomes(linkage, SINGLE_EXCHANGE)
    assert single["right_match"] / single["about_members"] >= 0.95
    # Bulk auto-accepts only at odds of 100,000:1; what it does not accept it mostly reviews.
    bulk = _outcomes(linkage, BULK)
    assert bulk["right_match"] / bulk["about_members"] >= 0.90
    assert (bulk["right_match"] + bulk["review"]) / bulk["about_members"] >= 0.98


def test_trained_model_is_a_loadable_artefact(linkage: Linkage) -> None:
    model = linkage.result.model
    assert MatchModel.from_json(model.to_json()) == model
    assert model.version != linkage.initial.version


def test_em_on_a_clean_population_keeps_lambda_and_stays_safe(linkage: Linkage) -> None:
    """Member-to-member pairs of one population: relatives and namesakes, hardly any matches.

    This is what training on the loaded population alone gives; lambda must not
    collapse and the model must still never match a relative.
    """
    members = linkage.members
    index: dict[str, list[MemberId]] = defaultdict(list)
    for member_id, record in members.items():
        for key in blocking_keys(record, secret=SECRET):
            index[key].append(member_id)
    pairs = {
        tuple(sorted((a, b))) for found in index.values() for a in found for b in found if a != b
    }
    rng = random.Random(5)
    ids = sorted(members)
    random_pairs = [(rng.choice(ids), rng.choice(ids)) for _ in range(30_000)]
    n = len(members)
    result = estimate_parameters_em(
        [comparison_vector(DEFAULT_SPEC, members[a], members[b]) for a, b in pairs],
        linkage.initial,
        total_pair_count=n * (n - 1) // 2,
        u_probabilities=estimate_u_probabilities(
            comparison_vector(DEFAULT_SPEC, members[a], members[b]) for a, b in random_pairs
        ),
        settings=EmSettings(estimate_lambda=False),
    )
    assert result.model.probability_two_random_records_match == (
        linkage.initial.probability_two_random_records_match
    )
    assert result.expected_matches < 0.01 * len(pairs)
    trained = Linkage(**{**vars(linkage), "result": result})
    assert _outcomes(trained, SINGLE_EXCHANGE)["wrong_match"] == 0
    assert _outcomes(trained, BULK)["wrong_match"] == 0


def test_count_vectors_is_sorted_with_counts() -> None:
    assert count_vectors([(1, 2), (0, 1), (1, 2)]) == [((0, 1), 1), ((1, 2), 2)]


def test_training_rejects_bad_input(linkage: Linkage) -> None:
    with pytest.raises(InvalidInput):
        estimate_u_probabilities([])
    with pytest.raises(InvalidInput):
        estimate_parameters_em([], linkage.initial, total_pair_count=10)
    with pytest.raises(InvalidInput):
        estimate_parameters_em([(1,) * 3], linkage.initial, total_pair_count=10)
    vectors = linkage.candidate_vectors[:5]
    with pytest.raises(InvalidInput):
        estimate_parameters_em(vectors, linkage.initial, total_pair_count=4)
    too_high = tuple(len(c.level_names) for c in DEFAULT_SPEC.comparisons)
    with pytest.raises(InvalidInput):
        estimate_u_probabilities([too_high])
    with pytest.raises(InvalidInput):
        estimate_u_probabilities(linkage.random_vectors, prior_strength=0)
    with pytest.raises(InvalidInput):
        estimate_parameters_em(
            vectors,
            linkage.initial,
            total_pair_count=10**6,
            settings=EmSettings(max_iterations=0),
        )


def test_a_level_the_random_pairs_never_show_gets_half_a_pair_not_a_sliver_of_the_prior() -> None:
    """50,000 random pairs with no shared birth date cannot tell a u of 1/50,000 from one fifty
    times smaller: the level gets half a pseudo-pair (Jeffreys), so an exact birth date is not
    worth 5-6 bits more than it is (it once sent 11,000 never-enrolled twins to review)."""
    pairs = 50_000
    index = DEFAULT_SPEC.index("birth_date")
    every_else = tuple(len(c.level_names) - 1 for c in DEFAULT_SPEC.comparisons)
    u = estimate_u_probabilities([every_else] * pairs)
    birth_exact = u[index][DEFAULT_SPEC.comparisons[index].level_index("exact") - 1]
    assert 0.5 / (pairs + 1_000 + 10) < birth_exact < 1.0 / pairs
    # Common levels are still what the sample says.
    sex = DEFAULT_SPEC.index("sex")
    assert u[sex][-1] == pytest.approx(1.0, abs=0.02)
    assert all(sum(row) == pytest.approx(1.0) for row in u)
