"""Training on the payer's own population: u from random member pairs, m by EM on blocked pairs."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, Matcher, decide
from payerbridge.identity.matching.model import DecisionId, MatchOutcome
from payerbridge.identity.matching.population import (
    MemberSample,
    PopulationFit,
    blocked_pairs,
    fit_population,
    household_pair_probability,
)
from payerbridge.identity.matching.scoring import MatchModel, default_model
from payerbridge.identity.matching.spec import DEFAULT_SPEC
from payerbridge.identity.matching.training import count_exact_agreement
from payerbridge.identity.model import StandardRecord
from payerbridge.types import MemberId
from payerbridge_tools.bench.identity_data import generate_identity_set

SECRET = b"test-blocking-secret"


def _groups(records: list[StandardRecord]) -> list[list[int]]:
    index: dict[str, list[int]] = defaultdict(list)
    for position, record in enumerate(records):
        for key in blocking_keys(record, secret=SECRET):
            index[key].append(position)
    return [index[key] for key in sorted(index)]


@pytest.fixture(scope="module")
def population() -> tuple[list[MemberId], list[StandardRecord], list[list[int]]]:
    people = generate_identity_set(1_000, seed=11)
    ids = [people.member_id(i) for i in range(people.member_count)]
    records = [standard_record(Demographics(**fields)) for fields in people.iter_member_fields()]
    return ids, records, _groups(records)


@pytest.fixture(scope="module")
def fitted(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
) -> PopulationFit:
    _, records, groups = population
    return fit_population(MemberSample(records, groups), rng=random.Random(3), u_pairs=10_000)


def _m(model: MatchModel, comparison: str, level: str) -> float:
    index = DEFAULT_SPEC.index(comparison)
    return model.m_probabilities[index][DEFAULT_SPEC.comparisons[index].level_index(level) - 1]


def test_fitted_model_keeps_lambda_and_learns_from_the_population(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
    fitted: PopulationFit,
) -> None:
    _, records, _ = population
    prior = default_model(probability_two_random_records_match=1 / len(records))
    model = fitted.model
    assert model.probability_two_random_records_match == prior.probability_two_random_records_match
    assert model.version != prior.version
    assert model.u_probabilities != prior.u_probabilities
    assert model.m_probabilities != prior.m_probabilities
    # Conflict levels keep the prior's m (twins must not teach that names may differ).
    assert _m(model, "given_name", "else") == pytest.approx(_m(prior, "given_name", "else"))
    assert MatchModel.from_json(model.to_json()) == model


def test_summary_counts_the_training(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
    fitted: PopulationFit,
) -> None:
    _, records, groups = population
    summary = fitted.summary
    pairs, skipped = blocked_pairs(groups, members=len(records), max_group=50)
    assert summary["members"] == len(records)
    assert summary["blocked_pairs"] == len(pairs) > 0
    assert summary["skipped_groups"] == skipped
    assert summary["random_pairs"] == 10_000
    assert 0 < summary["distinct_vectors"] <= len(pairs)
    assert summary["converged"] is True and 1 <= summary["iterations"] <= 100
    assert set(summary) >= {
        "members",
        "blocked_pairs",
        "distinct_vectors",
        "iterations",
        "converged",
    }


def test_fit_is_deterministic_for_a_seed(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
    fitted: PopulationFit,
) -> None:
    _, records, groups = population
    # Same seed, groups in another order and with members named twice: the same model.
    shuffled = [list(group) + list(group[:1]) for group in reversed(groups)]
    again = fit_population(MemberSample(records, shuffled), rng=random.Random(3), u_pairs=10_000)
    assert again.model.version == fitted.model.version
    assert again.summary == fitted.summary
    other = fit_population(MemberSample(records, groups), rng=random.Random(4), u_pairs=10_000)
    assert other.model.version != fitted.model.version


def test_fitted_model_never_auto_matches_the_wrong_member(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
    fitted: PopulationFit,
) -> None:
    ids, records, _ = population
    index: dict[str, list[int]] = defaultdict(list)
    for position, record in enumerate(records):
        for key in blocking_keys(record, secret=SECRET):
            index[key].append(position)
    # The fixture's members (drawn before the requests), and requests about them and others.
    people = generate_identity_set(1_000, seed=11, requests=360, non_member_share=60 / 360)
    assert [people.member_id(i) for i in range(people.member_count)] == ids
    at = datetime(2026, 3, 1, tzinfo=UTC)
    right = 0
    for policy in (BULK, SINGLE_EXCHANGE):
        for j in range(people.request_count):
            record = standard_record(Demographics(**people.request_fields(j)))
            found = sorted(
                {m for key in blocking_keys(record, secret=SECRET) for m in index.get(key, ())}
            )
            decision = decide(
                record,
                [(ids[m], records[m]) for m in found],
                Matcher(fitted.model, policy),
                at,
                DecisionId("d"),
            )
            if decision.outcome is MatchOutcome.MATCH:
                assert decision.member_id == people.truth_of(j)
                right += policy is SINGLE_EXCHANGE
    assert right >= 0.8 * 300


def test_blocked_pairs_skip_large_groups_and_count_each_pair_once() -> None:
    groups = [[0, 1], [1, 0, 2], [3], [0, 1, 2, 3, 4], [2, 2]]
    pairs, skipped = blocked_pairs(groups, members=5, max_group=3)
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    assert skipped == 1
    with pytest.raises(InvalidInput):
        blocked_pairs([[0, 5]], members=5, max_group=3)


def test_training_needs_a_population_with_shared_keys(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
) -> None:
    _, records, _ = population
    with pytest.raises(InvalidInput, match="at least two"):
        fit_population(MemberSample(records[:1], []), rng=random.Random(1))
    with pytest.raises(InvalidInput, match="nothing to learn"):
        fit_population(
            MemberSample(records[:10], [[0], [1, 2, 3]]), rng=random.Random(1), max_group=2
        )


def test_households_are_counted_from_addresses_phones_and_subscribers(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
    fitted: PopulationFit,
) -> None:
    _, records, _ = population
    n = len(records)
    families = household_pair_probability(records)
    assert families * n * (n - 1) / 2 > n / 2  # most members share a home with someone
    assert fitted.summary["household_pair_probability"] == families
    assert fitted.model.household_pair_probability == families
    assert not fitted.model.relatives_unlikely

    def alone(i: int, phone: str | None = None) -> StandardRecord:
        return standard_record(
            Demographics(
                given=["Ana"],
                address_lines=[f"{i} Oak St"],
                postal_code=f"{10000 + i}",
                phone=phone or f"217555{i:04d}",
                subscriber_id=f"S{i}",
            )
        )

    assert household_pair_probability([alone(i) for i in range(200)]) == pytest.approx(
        0.5 / (200 * 199 / 2)
    )
    # A care home's shared phone is no household; two at one address are.
    home = [alone(i, phone="2175550000") for i in range(60)]
    assert household_pair_probability(home) == pytest.approx(0.5 / (60 * 59 / 2))
    couple = [alone(i) for i in range(59)] + [alone(0, phone="2175559999")]
    assert household_pair_probability(couple) == pytest.approx(1 / (60 * 59 / 2))


def test_birth_date_agreement_is_counted_over_every_pair_of_members() -> None:
    """Three members hold a birth date, two of them the same one: one pair in three agrees.
    The other birth-date levels keep their sampled proportions; a field fewer than two
    members hold (the phone here) keeps its sampled u."""
    records = [
        standard_record(Demographics(given=["Ann"], birth_date="1980-01-02", phone="3125550100")),
        standard_record(Demographics(given=["Bea"], birth_date="1980-01-02")),
        standard_record(Demographics(given=["Cy"], birth_date="1991-07-30")),
        standard_record(Demographics(given=["Di"])),
    ]
    sampled = tuple(tuple(lv.u_probability for lv in c.levels) for c in DEFAULT_SPEC.comparisons)
    counted = count_exact_agreement(sampled, records, DEFAULT_SPEC, prior_strength=1e-9)
    birth, phone = DEFAULT_SPEC.index("birth_date"), DEFAULT_SPEC.index("phone")
    assert counted[birth][0] == pytest.approx(1 / 3)
    assert sum(counted[birth]) == pytest.approx(1.0)
    scale = (1 - 1 / 3) / (1 - sampled[birth][0])
    assert counted[birth][1:] == pytest.approx([u * scale for u in sampled[birth][1:]])
    assert counted[phone] == sampled[phone]
    # The prior's pseudo-pairs keep a plan where no two members agree off a u of zero.
    alone = count_exact_agreement(sampled, records[:1] + records[2:], DEFAULT_SPEC)
    assert 0 < alone[birth][0] < sampled[birth][0]


def test_a_sample_is_trained_with_the_odds_of_the_whole_population(
    population: tuple[list[MemberId], list[StandardRecord], list[list[int]]],
) -> None:
    """Trained on a sample of the members, a request is still matched against all of them:
    the prior is one in the population, not one in the sample (a fifth of a million
    members would make each request five times likelier to be any one of them)."""
    _, records, groups = population
    fit = fit_population(
        MemberSample(records, groups, population=5 * len(records)),
        rng=random.Random(3),
        u_pairs=1_000,
    )
    assert fit.model.probability_two_random_records_match == pytest.approx(1 / (5 * len(records)))
    assert fit.summary["population"] == 5 * len(records)
    with pytest.raises(InvalidInput, match="smaller than the members"):
        fit_population(
            MemberSample(records, groups, population=len(records) - 1), rng=random.Random(3)
        )
