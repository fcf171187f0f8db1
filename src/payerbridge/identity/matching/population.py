"""Training a ``MatchModel`` on the payer's own member population (``payerbridge identity train``).

The members are one deduplicated population: a pair of distinct members is,
with rare exceptions, two different people. So:

* u comes from the comparison vectors of random pairs of distinct members
  (``estimate_u_probabilities``), except where a level is one field's equality: then
  from every pair (``count_exact_agreement``);
* term frequencies (``frequencies``) are counted over the records, and so is how
  often two members share a household (``household_pair_probability``);
* m comes from EM (``estimate_parameters_em``) over the *blocked* member pairs,
  every pair of members that share a blocking key, each pair once, with u held
  fixed and ``estimate_lambda=False``: among one population's pairs the EM would
  drive lambda towards zero, so the model keeps the prior for $member-match,
  1 / members: all the members a request is matched against, not the sample's size
  (see ``training``).

Keys held by more than ``max_group`` members (a common name in a large ZIP, a
shared phone of a care home) are skipped: their pairs are almost all
strangers who agree on one field, and they would cost quadratic time to say
what the random pairs already say.

Pure: records in, model out; the caller chooses the sample and the random
generator, so the same inputs and seed always give the same model.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from payerbridge.errors import InvalidInput
from payerbridge.identity.matching.frequencies import count_term_frequencies
from payerbridge.identity.matching.scoring import MatchModel, comparison_vector, default_model
from payerbridge.identity.matching.training import (
    EmSettings,
    count_exact_agreement,
    estimate_parameters_em,
    estimate_u_probabilities,
)
from payerbridge.identity.model import StandardRecord

__all__ = [
    "MemberSample",
    "PopulationFit",
    "blocked_pairs",
    "fit_population",
    "household_pair_probability",
]


@dataclass(frozen=True, slots=True)
class MemberSample:
    """The members trained on: their ``records``; ``key_groups``, per blocking key, the
    indexes (into ``records``) of the members holding it; and ``population``, how many
    members a request is matched against when ``records`` are a sample of them (None:
    all of them)."""

    records: Sequence[StandardRecord]
    key_groups: Iterable[Sequence[int]]
    population: int | None = None


@dataclass(frozen=True, slots=True)
class PopulationFit:
    """The trained model and a summary of the training (counts only, no demographics)."""

    model: MatchModel
    summary: dict[str, Any]


def blocked_pairs(
    key_groups: Iterable[Sequence[int]], *, members: int, max_group: int
) -> tuple[list[tuple[int, int]], int]:
    """Every pair (i < j) of members sharing a key, once, in sorted order; and how many
    groups were skipped for holding more than ``max_group`` members.

    A group may name a member more than once; indexes outside ``range(members)`` are
    refused."""
    pairs: set[int] = set()
    skipped = 0
    for group in key_groups:
        indexes = sorted(set(group))
        if len(indexes) < 2:
            continue
        if indexes[0] < 0 or indexes[-1] >= members:
            raise InvalidInput("a key group names a member that is not among the records")
        if len(indexes) > max_group:
            skipped += 1
            continue
        for position, i in enumerate(indexes):
            pairs.update(i * members + j for j in indexes[position + 1 :])
    return [divmod(code, members) for code in sorted(pairs)], skipped


def household_pair_probability(records: Sequence[StandardRecord], *, max_group: int = 50) -> float:
    """The share of pairs of distinct members who share a household: one address (ZIP,
    house number, street and unit), one phone or one subscriber id.

    Groups of more than ``max_group`` (a care home's phone, a building without unit
    numbers) are not households and are skipped. With no pair found, half a pair (the
    Jeffreys floor, as for u): a sample cannot show that households never occur."""
    n = len(records)
    if n < 2:
        raise InvalidInput("counting households needs at least two members")
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, record in enumerate(records):
        if record.postal_code and record.street:
            residence = (
                record.postal_code,
                record.house_number or "",
                record.street,
                record.unit or "",
            )
            groups.setdefault(("residence", *residence), []).append(i)
        if record.phone:
            groups.setdefault(("phone", record.phone), []).append(i)
        if record.subscriber_id:
            groups.setdefault(("subscriber", record.subscriber_id), []).append(i)
    pairs, _ = blocked_pairs(groups.values(), members=n, max_group=max_group)
    return max(len(pairs), 0.5) / (n * (n - 1) / 2)


def fit_population(
    sample: MemberSample, *, rng: random.Random, u_pairs: int = 50_000, max_group: int = 50
) -> PopulationFit:
    """Train on the ``sample``'s members. See the module docstring.

    The sample's ``population`` is how many members a request is matched against when
    its records are a sample of them: the prior is one in that many, not one in the sample's size (a
    sample of 200,000 from a million members would make every request five times
    likelier to be any one member than it is, 2.3 bits of odds that are not there)."""
    records, key_groups, population = sample.records, sample.key_groups, sample.population
    n = len(records)
    if n < 2:
        raise InvalidInput("training needs at least two indexed members")
    if u_pairs < 1 or max_group < 2:
        raise InvalidInput("training needs at least one random pair and groups of two")
    if population is not None and population < n:
        raise InvalidInput("the population cannot be smaller than the members sampled from it")
    members = population or n
    household = household_pair_probability(records, max_group=max_group)
    initial = default_model(probability_two_random_records_match=1 / members).with_population(
        {}, household
    )
    spec = initial.spec
    random_vectors = []
    for _ in range(u_pairs):
        i = rng.randrange(n)
        j = rng.randrange(n - 1)
        j += j >= i  # a distinct member, uniformly
        random_vectors.append(comparison_vector(spec, records[i], records[j]))
    u = count_exact_agreement(estimate_u_probabilities(random_vectors), records, spec)
    pairs, skipped = blocked_pairs(key_groups, members=n, max_group=max_group)
    if not pairs:
        raise InvalidInput(
            "no two members share a blocking key (or every shared key is held by more than "
            f"{max_group} members): there is nothing to learn m from"
        )
    result = estimate_parameters_em(
        (comparison_vector(spec, records[i], records[j]) for i, j in pairs),
        initial,
        total_pair_count=n * (n - 1) // 2,
        u_probabilities=u,
        settings=EmSettings(estimate_lambda=False),
    )
    frequencies = count_term_frequencies(records, spec)
    summary: dict[str, Any] = {
        "members": n,
        "population": members,
        "random_pairs": u_pairs,
        "blocked_pairs": result.candidate_pairs,
        "skipped_groups": skipped,
        "max_group": max_group,
        "distinct_vectors": result.distinct_vectors,
        "iterations": result.iterations,
        "converged": result.converged,
        "expected_matches": round(result.expected_matches, 3),
    }
    summary["term_frequencies"] = {
        name: {"members": table.total, "values_held_twice_or_more": len(table.counts)}
        for name, table in frequencies.items()
    }
    summary["household_pair_probability"] = household
    return PopulationFit(result.model.with_population(frequencies, household), summary)
