"""Fellegi-Sunter scoring with household awareness, and the versioned ``MatchModel``.

A ``MatchModel`` holds, for every comparison level of a ``ComparisonSpec``, an
``m_probability`` (P(level | match)) and a ``u_probability`` (P(level | non-match)),
plus the prior ``probability_two_random_records_match`` (lambda). A level's
``match_weight`` is log2(m/u); a pair's ``match_weight`` is the prior's
log2(lambda / (1 - lambda)) plus the comparisons' weights, and its
``match_probability`` is 2^w / (1 + 2^w).

Household awareness
-------------------
Fellegi-Sunter assumes comparisons are independent given match status. For the
fields a household shares (surname, street address, ZIP, phone, subscriber id,
a member id that is the subscriber's, a carried SSN) that is false: a spouse,
child or twin agrees on all of them at once, and summing their weights would
call family members the same person with odds of 2^80.

So the household group's agreements are weighed jointly. Two distinct members
share a household with probability q (``household_pair_probability``, counted
from the members at training: pairs at one address, on one phone or under one
subscriber); otherwise their fields agree independently. For the group's
agreeing fields, P(all agree | non-match) = q + prod(u_i - q); a true match's
household agreements go together as its disagreements do (a move changes them
all), so P(all agree | match) is taken as the largest m_i. The group weighs
log2(max m_i / (q + prod(u_i - q))), which never falls when one more field
agrees (a single field: log2(m/u), as usual).
In a plan of families q is about one in a million for a million members, and
the group weighs about what its strongest agreement alone would (any one of
them already says "same household"; the person-level comparisons, given name,
birth date, sex, member id, own SSN, must say "same person"). In a population
of unrelated people q is near zero and the fields add up, as Splink's would.

Disagreements of the household group are not capped: each one still
subtracts its full weight (a stranger who shares a name and birth date gains
nothing), with one exception. The residence (street address, ZIP, phone) is a
``disagreement_group``: a member who moved disagrees on all three at once, as
one event, so the group subtracts its strongest disagreement only. Summing
them charged a mover three times for one move.

Term frequencies
----------------
A comparison with a ``term_frequency`` field in the spec weighs its exact
level with the frequency of the agreed value among the payer's members
(``frequencies``): log2(m / frequency) instead of log2(m / u). Training
(EM) runs on the average weights, as Splink's does; the adjustment is applied
when a pair is scored (``score``). A model without tables weighs every value
alike.

Nicknames that are names in their own right
-------------------------------------------
The curated nickname level says two first names are one name (Katie for
Kathryn, Debra for Deborah), strong enough to auto-match with the birth date
and household. Where members of this plan hold both names as their own given
names, the shorter form is a name parents give in its own right, and a twin
sister may bear it: such a pair is weighed and guarded as a ``name_variant``
(an identifier must confirm it), as the wider dataset's variants are. The set
of such names comes from the model's given-name frequencies (``score``).

A name is weighed among the members born in the pair's year where the model
counted names per birth year (``frequencies``): by the larger of its frequency in
the plan and among those born that year (drawn towards the plan's by as many
members as hold it once in the plan, so a few namesakes of one year by chance move
it little; ``_Cohorts``). A name that is rare in a million members
may be among the commonest of one year's births, and a stranger born that year who
shares it is that much likelier; with the birth date's own u, the pair of name and
date is weighed by how often it occurs, not by the two frequencies multiplied.

Misspellings
------------
Twins are named alike often enough (Mia and Mila) that a first name a typo away
needs an identifier to confirm it. But a twin's name is a name: in a plan of
at least ``_MISSPELLING_MEMBERS`` members, where one side's name is held by
members in its own right (as above) and the other's by none of them (or one),
the other is that name misspelled, not a sibling's. Such a pair is at the
``misspelling`` level, which needs no identifier, and weighs what agreeing on
the held name would: a non-match shows it when a request misspells a name
that this member happens to hold, as often as typos happen times the name's
frequency; a match, as often as typos happen. Where the other name is held too
(Mila), the typo level and its guard stay.

``ScoredPair.household_adjustment`` records how much weight the joint weighing
took from the sum of the group's agreements (and the residence group gave back),
so evidence shows it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, getitem
from typing import Any

from payerbridge.errors import InvalidInput
from payerbridge.identity.matching.frequencies import BIRTH_YEARS, TermFrequencies, cohort_key
from payerbridge.identity.matching.spec import DEFAULT_SPEC, ComparisonSpec
from payerbridge.identity.model import StandardRecord

__all__ = [
    "MatchModel",
    "Probabilities",
    "ScoredPair",
    "comparison_vector",
    "default_model",
    "match_weight_of",
    "pair_weights",
    "probability_from_weight",
    "score",
    "score_levels",
]

MODEL_FORMAT = "payerbridge.identity.fellegi-sunter/1"
# Floor for m and u when turning them into weights: a level never observed is
# strong evidence, not infinite evidence.
_PROBABILITY_FLOOR = 1e-12
# Without a count from the members: pairs in one household per true pair (households of
# about 2.5 people share 1.5 pairs per member).
_HOUSEHOLD_PAIRS_PER_MATCH = 1.5
# Fewer household pairs per member than this (one member in a hundred sharing a home):
# the population is of unrelated people, and the guards against relatives give way.
_FEW_HOUSEHOLD_PAIRS = 0.01
# A first name held by at least this share of the members (and by two of them) is a given
# name in its own right in this plan, not only a nickname.
_OWN_NAME_SHARE = 1 / 20_000
# In a plan this large a given name that no member holds (or one does) is rare enough
# that a twin is seldom given it: a first name a typo from a held one is a misspelling.
_MISSPELLING_MEMBERS = 50_000
# u - q never falls below this share of u: an agreement is never taken for more than a
# few bits stronger than its own u says, whatever q was counted.
_LEAST_INDEPENDENT_SHARE = 0.1

Probabilities = tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """The score of one pair of records; holds level indices and weights, never values."""

    levels: tuple[int, ...]
    match_weights: tuple[float, ...]
    household_adjustment: float
    match_weight: float
    match_probability: float


@dataclass(frozen=True)
class MatchModel:
    """A trained (or default) Fellegi-Sunter model; ``version`` is a hash of its content.

    ``m_probabilities[i][k]`` and ``u_probabilities[i][k]`` belong to the
    ``k+1``-th level of comparison ``i`` (the null level has no parameters).
    ``term_frequencies`` holds, per comparison name, the counted table its
    term-frequency field is weighed with (none: every value alike).
    """

    spec: ComparisonSpec
    probability_two_random_records_match: float
    m_probabilities: Probabilities
    u_probabilities: Probabilities
    term_frequencies: Mapping[str, TermFrequencies] = field(default_factory=dict)
    # P(two distinct members share a household); None: the prior, 1.5 x lambda (households
    # of about 2.5 people).
    household_pair_probability: float | None = None
    version: str = field(init=False)
    prior_weight: float = field(init=False, repr=False)
    level_weights: tuple[tuple[float, ...], ...] = field(init=False, repr=False)
    # Per comparison: its household-shared level flags, its disagreement group (-1: none).
    _shared: tuple[tuple[bool, ...], ...] = field(init=False, repr=False)
    _groups: tuple[int, ...] = field(init=False, repr=False)
    _m: tuple[tuple[float, ...], ...] = field(init=False, repr=False)
    _q: float = field(init=False, repr=False)
    # Whether the members share households at all (see ``relatives_unlikely``).
    relatives_unlikely: bool = field(init=False, repr=False)
    # Per term-frequency comparison: (index, exact level, value getter, m of exact, table,
    # its table per birth year or None).
    _frequency_adjusted: tuple[
        tuple[int, int, Any, float, TermFrequencies, _Cohorts | None], ...
    ] = field(init=False, repr=False, compare=False)
    # What the given-name table tells (see "Nicknames that are names in their own right"
    # and "Misspellings"); None without one.
    _held_names: _HeldGivenNames | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lam = self.probability_two_random_records_match
        if not 0.0 < lam < 1.0:
            raise InvalidInput("probability_two_random_records_match must be in (0, 1)")
        for kind, table in (("m", self.m_probabilities), ("u", self.u_probabilities)):
            if len(table) != len(self.spec.comparisons):
                raise InvalidInput(f"{kind} probabilities do not fit the spec")
            for comparison, row in zip(self.spec.comparisons, table, strict=True):
                if len(row) != len(comparison.levels) or not all(0 <= p <= 1 for p in row):
                    raise InvalidInput(f"{kind} probabilities of {comparison.name} are invalid")
        weights = tuple(
            (0.0, *(_weight(m, u) for m, u in zip(ms, us, strict=True)))
            for ms, us in zip(self.m_probabilities, self.u_probabilities, strict=True)
        )
        adjusted = []
        years = self.term_frequencies.get(BIRTH_YEARS)
        for name, frequencies in self.term_frequencies.items():
            if name == BIRTH_YEARS or name.endswith(cohort_key("")):
                base = name.removesuffix(cohort_key(""))
                if name != BIRTH_YEARS and (base not in self.term_frequencies or years is None):
                    raise InvalidInput(f"a table per birth year for {base} without its tables")
                continue
            weighed = next((c for c in self.spec.comparisons if c.name == name), None)
            if weighed is None or weighed.term_frequency is None:
                raise InvalidInput(f"term frequencies for {name}, which has no frequency field")
            index, exact = self.spec.index(name), weighed.level_index("exact")
            getter = attrgetter(weighed.term_frequency)
            m = self.m_probabilities[index][exact - 1]
            by_year = self.term_frequencies.get(cohort_key(name))
            cohorts = None if by_year is None or years is None else _Cohorts(by_year, years)
            adjusted.append((index, exact, getter, m, frequencies, cohorts))
        q = self.household_pair_probability
        if q is None:
            q = min(_HOUSEHOLD_PAIRS_PER_MATCH * lam, 0.5)
        elif not 0.0 <= q < 1.0:
            raise InvalidInput("household_pair_probability must be in [0, 1)")
        object.__setattr__(self, "_q", q)
        # Household pairs per member: q x (N - 1) / 2, with lambda about 1 / N.
        object.__setattr__(self, "relatives_unlikely", q / (2.0 * lam) < _FEW_HOUSEHOLD_PAIRS)
        object.__setattr__(
            self,
            "_m",
            tuple(
                (1.0, *(max(m, _PROBABILITY_FLOOR) for m in row)) for row in self.m_probabilities
            ),
        )
        object.__setattr__(self, "term_frequencies", dict(self.term_frequencies))
        object.__setattr__(self, "level_weights", weights)
        object.__setattr__(self, "_shared", self.spec.household_shared)
        object.__setattr__(self, "_groups", self.spec.disagreement_groups)
        object.__setattr__(self, "_frequency_adjusted", tuple(sorted(adjusted, key=_first)))
        object.__setattr__(self, "_held_names", self._given_names_held())
        object.__setattr__(self, "prior_weight", math.log2(lam / (1.0 - lam)))
        object.__setattr__(self, "version", _version(self._content()))

    def _given_names_held(self) -> _HeldGivenNames | None:
        table = self.term_frequencies.get("given_name")
        if table is None:
            return None
        index = self.spec.index("given_name")
        comparison = self.spec.comparisons[index]
        needed = {"exact", "nickname", "name_variant", "misspelling", *_TYPO_LEVELS}
        if not needed <= {level.name for level in comparison.levels}:
            return None
        least = max(2, math.ceil(_OWN_NAME_SHARE * table.total))
        exact = comparison.level_index("exact")
        typos: frozenset[int] = frozenset()
        if table.total >= _MISSPELLING_MEMBERS:
            typos = frozenset(comparison.level_index(name) for name in _TYPO_LEVELS)
        return _HeldGivenNames(
            index=index,
            nickname=comparison.level_index("nickname"),
            variant=comparison.level_index("name_variant"),
            typos=typos,
            misspelling=comparison.level_index("misspelling"),
            names=frozenset(name for name, count in table.counts.items() if count >= least),
            table=table,
            m_exact=self.m_probabilities[index][exact - 1],
        )

    def population_levels(
        self, levels: tuple[int, ...], a: StandardRecord, b: StandardRecord
    ) -> tuple[int, ...]:
        """``levels`` with what this plan's members tell: a nickname agreement between two
        names both held as given names in their own right is a ``name_variant``; a typo
        between a name held in its own right and one no member holds, a ``misspelling``."""
        held = self._held_names
        if held is None:
            return levels
        index = held.index
        level = levels[index]
        if level == held.nickname:
            if a.first_name not in held.names or b.first_name not in held.names:
                return levels
            level = held.variant
        elif level in held.typos:
            if not held.misspelled(a.first_name, b.first_name):
                return levels
            level = held.misspelling
        else:
            return levels
        return (*levels[:index], level, *levels[index + 1 :])

    def _content(self) -> dict[str, object]:
        return {
            "format": MODEL_FORMAT,
            "spec_fingerprint": self.spec.fingerprint,
            "probability_two_random_records_match": self.probability_two_random_records_match,
            "comparisons": [
                {
                    "name": comparison.name,
                    "levels": [
                        {"name": level.name, "m_probability": m, "u_probability": u}
                        for level, m, u in zip(comparison.levels, ms, us, strict=True)
                    ],
                }
                for comparison, ms, us in zip(
                    self.spec.comparisons, self.m_probabilities, self.u_probabilities, strict=True
                )
            ],
            "term_frequencies": {
                name: {"total": table.total, "counts": dict(sorted(table.counts.items()))}
                for name, table in sorted(self.term_frequencies.items())
            },
            "household_pair_probability": self.household_pair_probability,
        }

    def to_json(self) -> str:
        """The model as a JSON artefact (stable key order; floats round-trip exactly)."""
        return json.dumps({**self._content(), "version": self.version}, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str, spec: ComparisonSpec = DEFAULT_SPEC) -> MatchModel:
        """Load an artefact written by ``to_json`` for this ``spec``.

        Refuses an artefact of another format or spec fingerprint (the level
        functions it was trained with are not the ones this code runs), and
        one whose content does not hash to its recorded version.
        """
        try:
            data = json.loads(text)
            if data["format"] != MODEL_FORMAT or data["spec_fingerprint"] != spec.fingerprint:
                raise InvalidInput("the model artefact was trained for another matching spec")
            rows = {c["name"]: c["levels"] for c in data["comparisons"]}
            m_table, u_table = [], []
            for comparison in spec.comparisons:
                levels = rows[comparison.name]
                if [level["name"] for level in levels] != [lv.name for lv in comparison.levels]:
                    raise InvalidInput(f"model levels of {comparison.name} do not fit the spec")
                m_table.append(tuple(float(level["m_probability"]) for level in levels))
                u_table.append(tuple(float(level["u_probability"]) for level in levels))
            frequencies = {
                name: TermFrequencies(int(table["total"]), table["counts"])
                for name, table in data.get("term_frequencies", {}).items()
            }
            household = data.get("household_pair_probability")
            model = cls(
                spec,
                float(data["probability_two_random_records_match"]),
                tuple(m_table),
                tuple(u_table),
                frequencies,
                None if household is None else float(household),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput("the model artefact is malformed") from exc
        if data.get("version") not in (None, model.version):
            raise InvalidInput("the model artefact does not hash to its recorded version")
        return model

    def with_population(
        self,
        tables: Mapping[str, TermFrequencies],
        household_pair_probability: float | None = None,
    ) -> MatchModel:
        """This model with what was counted over the members: term-frequency ``tables`` and
        how often two members share a household."""
        return MatchModel(
            self.spec,
            self.probability_two_random_records_match,
            self.m_probabilities,
            self.u_probabilities,
            tables,
            household_pair_probability,
        )


# The given-name levels of a typo, which a misspelling of a held name replaces: one
# keystroke, not ``similar`` (two typos, or names that share little more than a first
# letter: Alexandra and Amanda), where a newborn's new name as often as a typo lies.
_TYPO_LEVELS = ("jaro_winkler", "one_edit")


@dataclass(frozen=True, slots=True)
class _HeldGivenNames:
    """A model's given-name table, compiled for ``population_levels`` and the weights."""

    index: int
    nickname: int
    variant: int
    # The typo levels a misspelling may replace; none in a plan too small to tell.
    typos: frozenset[int]
    misspelling: int
    # The names held in their own right (see "Nicknames that are names in their own right").
    names: frozenset[str]
    table: TermFrequencies
    m_exact: float

    def misspelled(self, x: str | None, y: str | None) -> bool:
        """One of the two names is held in its own right, the other by at most one member."""
        counts = self.table.counts
        return (x in self.names and y not in counts) or (y in self.names and x not in counts)

    def misspelling_weight(self, x: str | None, y: str | None) -> float:
        """What agreeing on the held name of the two would weigh."""
        frequency = max(self.table.frequency(x or ""), self.table.frequency(y or ""))
        return _weight(self.m_exact, frequency)


@dataclass(frozen=True, slots=True)
class _Cohorts:
    """A comparison's values counted per birth year, and the members per birth year."""

    by_year: TermFrequencies
    years: TermFrequencies

    def frequency(self, value: str, year: str, in_plan: float) -> float:
        """The share of the members born in ``year`` who hold ``value``, drawn towards
        ``in_plan`` (its frequency among all members) by as many members as hold it once
        there: count / (born + 1 / in_plan). A few members sharing a name and a year by
        chance move it little; a name that fashion gave many children of one year, much.
        0 where fewer than two of that year hold it (the plan-wide frequency stands)."""
        count = self.by_year.counts.get(f"{value}|{year}")
        born = self.years.counts.get(year)
        return count / (born + 1.0 / in_plan) if count and born else 0.0


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _weight(m: float, u: float) -> float:
    return math.log2(max(m, _PROBABILITY_FLOOR) / max(u, _PROBABILITY_FLOOR))


def _version(content: dict[str, object]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return "fs-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def default_model(
    spec: ComparisonSpec = DEFAULT_SPEC, probability_two_random_records_match: float = 1e-6
) -> MatchModel:
    """The untrained model: the spec's prior m and u (about a million members by default)."""
    return MatchModel(
        spec,
        probability_two_random_records_match,
        tuple(tuple(level.m_probability for level in c.levels) for c in spec.comparisons),
        tuple(tuple(level.u_probability for level in c.levels) for c in spec.comparisons),
    )


def comparison_vector(
    spec: ComparisonSpec, a: StandardRecord, b: StandardRecord
) -> tuple[int, ...]:
    """The comparison level of each comparison of ``spec`` for the pair (a, b)."""
    return tuple([level_of(a, b) for level_of in spec.level_functions])


def match_weight_of(model: MatchModel, levels: Sequence[int]) -> float:
    """Total household-aware match weight of a comparison vector, without term frequencies
    (what training uses; see the module docstring)."""
    return _combine(model, levels, tuple(map(getitem, model.level_weights, levels)))[0]


def _combine(
    model: MatchModel, levels: Sequence[int], weights: Sequence[float]
) -> tuple[float, float]:
    """(total match weight, household adjustment) of per-comparison weights.

    The prior, plus every weight that is neither a household-shared agreement nor a
    grouped disagreement, plus the household group's joint weight (see the module
    docstring), plus the strongest disagreement of each group.
    """
    total = model.prior_weight
    shared_sum = 0.0
    agreeing: list[tuple[float, float]] = []
    worst: dict[int, float] = {}
    grouped_sum = 0.0
    # A plain loop: measurably faster here than sum/max over map(getitem, ...).
    for weight, shared, group, level, m_row in zip(
        weights, model._shared, model._groups, levels, model._m, strict=True
    ):
        if weight > 0.0 and shared[level]:
            shared_sum += weight
            agreeing.append((weight, m_row[level]))
        elif weight < 0.0 and group >= 0:
            grouped_sum += weight
            if weight < worst.get(group, 0.0):
                worst[group] = weight
        else:
            total += weight
    joint = _joint_weight(agreeing, model._q) if agreeing else 0.0
    strongest = sum(worst.values())
    adjustment = (joint - shared_sum) + (strongest - grouped_sum)
    return total + joint + strongest, adjustment


def _joint_weight(agreeing: list[tuple[float, float]], q: float) -> float:
    """log2(max m / (q + prod(u - q))) of household agreements given as (weight, m), never
    below 0: one more agreeing field never lowers it (max m can only rise, the product
    only fall)."""
    largest_m, independent = 0.0, 1.0
    for weight, m in agreeing:
        u = m * math.pow(2.0, -weight)
        largest_m = max(largest_m, m)
        independent *= max(u - q, _LEAST_INDEPENDENT_SHARE * u)
    return max(0.0, math.log2(largest_m / (q + independent)))


def pair_weights(
    model: MatchModel, a: StandardRecord, b: StandardRecord, levels: Sequence[int]
) -> list[float]:
    """Per comparison, the match weight of its level, term-frequency adjusted where the
    model has a table (an exact level means both hold the value; a misspelling weighs
    the held name's)."""
    weights = list(map(getitem, model.level_weights, levels))
    for index, exact, value_of, m, table, cohorts in model._frequency_adjusted:
        if levels[index] == exact:
            value = value_of(a)
            frequency = table.frequency(value)
            if cohorts is not None and a.birth_date and b.birth_date:
                year = a.birth_date[:4]
                if year == b.birth_date[:4]:
                    frequency = max(frequency, cohorts.frequency(value, year, frequency))
            weights[index] = _weight(m, frequency)
    held = model._held_names
    if held is not None and levels[held.index] == held.misspelling:
        weights[held.index] = held.misspelling_weight(a.first_name, b.first_name)
    return weights


def probability_from_weight(match_weight: float) -> float:
    """2^w / (1 + 2^w), without overflow at either end."""
    if match_weight >= 0.0:
        return 1.0 / (1.0 + math.pow(2.0, -match_weight))
    odds = math.pow(2.0, match_weight)
    return odds / (1.0 + odds)


def score_levels(
    model: MatchModel,
    levels: Sequence[int],
    records: tuple[StandardRecord, StandardRecord] | None = None,
) -> ScoredPair:
    """Score a comparison vector with per-comparison weights and the household adjustment;
    with the pair's ``records``, term frequencies apply."""
    if records is None:
        weights: Sequence[float] = tuple(map(getitem, model.level_weights, levels))
    else:
        weights = pair_weights(model, *records, levels)
    total, adjustment = _combine(model, levels, weights)
    return ScoredPair(
        levels=tuple(levels),
        match_weights=tuple(weights),
        household_adjustment=adjustment,
        match_weight=total,
        match_probability=probability_from_weight(total),
    )


def score(model: MatchModel, a: StandardRecord, b: StandardRecord) -> ScoredPair:
    """Compare and score one pair of records (symmetric: ``score(m, a, b) == score(m, b, a)``)."""
    return score_levels(
        model, model.population_levels(comparison_vector(model.spec, a, b), a, b), (a, b)
    )
