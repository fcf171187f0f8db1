"""The declarative matching spec: which comparisons the model makes, and what their levels mean.

Like a Splink settings dictionary, the spec says *what* is compared and leaves
*how* to ``comparison`` (the level functions) and ``scoring`` (the
Fellegi-Sunter arithmetic). Each ``Comparison`` names a comparator and, for
each of its levels (index 0, ``"null"``, is implicit and carries no weight):

* the prior ``m_probability`` (how often a true match lands in the level) and
  ``u_probability`` (how often a random non-match does). They make a usable
  untrained model and the starting point of EM. The u values assume a
  population of about a million members: identifiers and addresses agree for
  a random pair about once in a million;
* ``is_household_shared``: agreement that a household shares (surname,
  address, ZIP, phone, subscriber id, a member id that is the subscriber's, a
  carried SSN). Scoring counts the household group as one piece of evidence,
  not several independent ones (see ``scoring``);
* ``is_conflict``: disagreement beyond typo tolerance on what tells family
  members apart (given name, birth date, generational suffix). A pair with a
  conflict is auto-accepted only by a rule that names the conflict it
  tolerates (see ``rules``).

A comparison may belong to a ``disagreement_group``: the residence (street
address, ZIP, phone) changes all at once when a member moves, so its
disagreements count once, as one event (see ``scoring``).

A comparison may name a ``term_frequency`` field: agreement on that field's
value is then worth what the value's frequency among the payer's members says
(agreeing on a rare surname says more than agreeing on Smith), as Splink's
term-frequency adjustments do; ``scoring`` applies it to the exact level.

A comparison may name an ``exact_field``: its exact level is that field's values
being equal, so its u is counted over every pair of members at training
(``training.count_exact_agreement``) instead of sampled from random pairs, which
see a shared birth date once or twice, or never.

Changing a level, a threshold or a flag changes ``ComparisonSpec.fingerprint``,
and a stored model trained under another fingerprint no longer loads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from payerbridge.identity.matching import comparison as cmp
from payerbridge.identity.matching.comparison import Comparator, LevelFunction

__all__ = ["DEFAULT_SPEC", "Comparison", "ComparisonLevel", "ComparisonSpec"]

_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class ComparisonLevel:
    """One level of a comparison with its prior m and u probabilities and its flags."""

    name: str
    m_probability: float
    u_probability: float
    is_household_shared: bool = False
    is_conflict: bool = False


@dataclass(frozen=True, slots=True)
class Comparison:
    """A named comparison: a comparator and its non-null levels, strongest agreement first."""

    name: str
    description: str
    comparator: Comparator
    levels: tuple[ComparisonLevel, ...]
    # The ``StandardRecord`` field whose value's frequency adjusts the exact level.
    term_frequency: str | None = None
    # Comparisons of one group disagree together (a move): their disagreements count once.
    disagreement_group: str | None = None
    # The ``StandardRecord`` field whose equality is the exact level (its u is counted).
    exact_field: str | None = None

    def __post_init__(self) -> None:
        names = tuple(level.name for level in self.levels)
        if names != self.comparator.level_names[1:]:
            raise ValueError(
                f"comparison {self.name}: levels {names} do not match the "
                f"comparator's {self.comparator.level_names[1:]}"
            )
        for kind in ("m_probability", "u_probability"):
            total = sum(getattr(level, kind) for level in self.levels)
            if abs(total - 1.0) > _TOLERANCE:
                raise ValueError(f"comparison {self.name}: {kind} sums to {total}, not 1")

    @property
    def level_names(self) -> tuple[str, ...]:
        """All level names, ``"null"`` first: index ``i`` is what the comparator returns."""
        return self.comparator.level_names

    def level_index(self, name: str) -> int:
        return self.comparator.level_names.index(name)


@dataclass(frozen=True)
class ComparisonSpec:
    """The ordered comparisons of a model; comparison vectors follow this order."""

    comparisons: tuple[Comparison, ...]
    names: tuple[str, ...] = field(init=False, repr=False)
    level_functions: tuple[LevelFunction, ...] = field(init=False, repr=False)
    household_shared: tuple[tuple[bool, ...], ...] = field(init=False, repr=False)
    level_names: tuple[tuple[str, ...], ...] = field(init=False, repr=False)
    # Per comparison, the index of its disagreement group (-1: none).
    disagreement_groups: tuple[int, ...] = field(init=False, repr=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.comparisons)
        if len(set(names)) != len(names):
            raise ValueError("comparison names must be unique")
        object.__setattr__(self, "names", names)
        object.__setattr__(
            self, "level_functions", tuple(c.comparator.level_of for c in self.comparisons)
        )
        object.__setattr__(
            self,
            "household_shared",
            tuple(
                (False, *(level.is_household_shared for level in c.levels))
                for c in self.comparisons
            ),
        )
        object.__setattr__(self, "level_names", tuple(c.level_names for c in self.comparisons))
        groups = sorted({c.disagreement_group for c in self.comparisons if c.disagreement_group})
        object.__setattr__(
            self,
            "disagreement_groups",
            tuple(
                -1 if c.disagreement_group is None else groups.index(c.disagreement_group)
                for c in self.comparisons
            ),
        )
        object.__setattr__(self, "fingerprint", _fingerprint(self.comparisons))

    def index(self, name: str) -> int:
        """Position of the named comparison in comparison vectors."""
        return self.names.index(name)


def _fingerprint(comparisons: tuple[Comparison, ...]) -> str:
    shape = [
        {
            "name": c.name,
            "comparator": c.comparator.kind,
            "parameters": [list(p) for p in c.comparator.parameters],
            "term_frequency": c.term_frequency,
            "disagreement_group": c.disagreement_group,
            "exact_field": c.exact_field,
            "levels": [[lv.name, lv.is_household_shared, lv.is_conflict] for lv in c.levels],
        }
        for c in comparisons
    ]
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
    return f"spec-{digest[:16]}"


def _levels(*rows: tuple[str, float, float, str]) -> tuple[ComparisonLevel, ...]:
    """Levels from (name, m, u, flags) rows; flags: "h" household-shared, "c" conflict."""
    return tuple(
        ComparisonLevel(name, m, u, is_household_shared="h" in flags, is_conflict="c" in flags)
        for name, m, u, flags in rows
    )


DEFAULT_SPEC = ComparisonSpec(
    (
        Comparison(
            "given_name",
            "First given name, nicknames and initials",
            cmp.given_name(0.92, 0.8),
            _levels(
                ("exact", 0.852, 0.02, ""),
                ("nickname", 0.035, 0.003, ""),
                ("written_as_one", 0.003, 1e-5, ""),
                ("name_variant", 0.005, 0.003, ""),
                ("jaro_winkler", 0.03, 0.01, ""),
                ("one_edit", 0.01, 0.001, ""),
                ("initial", 0.02, 0.002, ""),
                ("given_name_token", 0.01, 0.002, ""),
                ("swapped", 0.005, 1e-5, ""),
                ("similar", 0.005, 0.02, ""),
                ("other_middle_name", 0.004, 0.001, ""),
                # Only from the plan's own given names (MatchModel.population_levels),
                # where it is weighed with the frequency of the name the members hold.
                ("misspelling", 0.005, 0.0002, ""),
                ("else", 0.016, 0.93778, "c"),
            ),
            term_frequency="first_name",
        ),
        Comparison(
            "middle_name",
            "Middle names, or the rest of a compound given name",
            cmp.middle_name(),
            _levels(
                ("exact", 0.58, 0.025, ""),
                ("shared", 0.02, 0.005, ""),
                ("initial", 0.3, 0.06, ""),
                ("else", 0.1, 0.91, ""),
            ),
        ),
        Comparison(
            "family_name",
            "Surname, hyphenated and married names",
            cmp.family_name(0.92),
            _levels(
                ("exact", 0.875, 0.01, "h"),
                ("token_overlap", 0.05, 0.001, "h"),
                ("jaro_winkler", 0.025, 0.004, "h"),
                ("one_edit", 0.005, 0.0005, "h"),
                ("swapped", 0.005, 1e-5, "h"),
                ("else", 0.04, 0.98449, "h"),
            ),
            term_frequency="family_name",
        ),
        Comparison(
            "birth_date",
            "Birth date with typo tolerance",
            cmp.birth_date(),
            _levels(
                ("exact", 0.93, 3.5e-5, ""),
                ("transposed_day_month", 0.01, 1.5e-5, ""),
                ("one_typo", 0.04, 1e-3, ""),
                ("year_off", 0.01, 2e-4, ""),
                ("day_defaulted", 0.005, 1e-4, ""),
                ("else", 0.004, 1 - 1.35e-3 - 0.3, "c"),
                ("other_generation", 0.001, 0.3, "c"),
            ),
            exact_field="birth_date",
        ),
        Comparison(
            "sex",
            "Administrative sex or birth sex",
            cmp.sex(),
            _levels(("exact", 0.98, 0.5, ""), ("else", 0.02, 0.5, "")),
        ),
        Comparison(
            "suffix",
            "Generational suffix (Jr, Sr, II, III)",
            cmp.exact_only("suffix"),
            _levels(("exact", 0.95, 0.5, ""), ("else", 0.05, 0.5, "c")),
        ),
        Comparison(
            "member_id",
            "Member id from the card",
            cmp.member_id(),
            _levels(
                ("exact", 0.72, 7e-7, ""),
                ("exact_subscriber_card", 0.18, 3e-7, "h"),
                ("one_typo", 0.02, 2e-5, ""),
                ("is_subscriber_id", 0.05, 2e-6, "h"),
                ("else", 0.03, 1 - 2.3e-5, ""),
            ),
        ),
        Comparison(
            "subscriber_id",
            "Subscriber id from the card",
            cmp.exact_only("subscriber_id"),
            _levels(("exact", 0.95, 2.5e-6, "h"), ("else", 0.05, 1 - 2.5e-6, "h")),
        ),
        Comparison(
            "ssn",
            "Social Security number",
            cmp.ssn(),
            _levels(
                ("exact", 0.93, 1e-6, ""),
                ("carried", 0.03, 2e-6, "h"),
                ("one_typo", 0.02, 1e-5, ""),
                ("else", 0.02, 1 - 1.3e-5, ""),
            ),
        ),
        Comparison(
            "street_address",
            "House number, street and unit",
            cmp.street_address(0.88),
            _levels(
                ("exact", 0.75, 2.5e-6, "h"),
                ("same_house_and_street", 0.05, 5e-6, "h"),
                ("same_house_similar_street", 0.03, 1e-5, "h"),
                ("else", 0.17, 1 - 1.75e-5, "h"),
            ),
            disagreement_group="residence",
        ),
        Comparison(
            "postal_code",
            "5-digit ZIP code",
            cmp.postal_code(),
            _levels(
                ("exact", 0.80, 0.002, "h"),
                ("same_zip3", 0.05, 0.01, "h"),
                ("else", 0.15, 0.988, "h"),
            ),
            disagreement_group="residence",
            exact_field="postal_code",
        ),
        Comparison(
            "phone",
            "10-digit phone number",
            cmp.phone(),
            _levels(
                ("exact", 0.70, 2.5e-6, "h"),
                ("one_typo", 0.02, 1e-5, "h"),
                ("same_area_code", 0.08, 0.01, "h"),
                ("else", 0.20, 1 - 0.01 - 1.25e-5, "h"),
            ),
            disagreement_group="residence",
            exact_field="phone",
        ),
    )
)
