"""Term frequencies: how common each name is among the payer's own members.

Agreeing on a surname held by one member in a hundred thousand says far more
than agreeing on Smith; a single u probability for "surnames agree" averages
the two and is wrong for both. Like Splink's term-frequency adjustments, a
comparison that names a ``term_frequency`` field in the spec has its exact
level weighed with the frequency of the agreed value instead of the average
(``scoring``).

Names are not spread evenly over the years: a name that is rare in a plan of a
million may be one of the commonest among those born in one year (parents follow
fashions), so agreeing on the name *and* the birth year says less than the two
frequencies multiplied. For the comparisons in ``_BY_BIRTH_YEAR`` (the given name)
training also counts each value per birth year (``cohort_key``) and the members per
birth year (``BIRTH_YEARS``); ``scoring`` weighs an agreed name among members born in
the pair's shared year by the larger of its frequency in the plan and in that year.

The tables are counted from the members at training time and stored in the
model. Only values held by at least two members are kept: the long tail of
names held once is most of the distinct values, and a value missing from the
table is counted once, which is what it is (or rarer, for a table counted from
a sample: then the weight errs on the low side).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType

from payerbridge.errors import InvalidInput
from payerbridge.identity.matching.spec import ComparisonSpec
from payerbridge.identity.model import StandardRecord

__all__ = ["BIRTH_YEARS", "TermFrequencies", "cohort_key", "count_term_frequencies"]

# The table of members per birth year, and the comparisons whose values are also counted
# per birth year.
BIRTH_YEARS = "birth_year"
_BY_BIRTH_YEAR = ("given_name",)


def cohort_key(name: str) -> str:
    """The name of comparison ``name``'s table of values per birth year ("value|year")."""
    return f"{name}|{BIRTH_YEARS}"


@dataclass(frozen=True)
class TermFrequencies:
    """Counts of one field's values among ``total`` members that have a value."""

    total: int
    counts: Mapping[str, int]

    def __post_init__(self) -> None:
        if self.total < 1 or any(c < 1 or c > self.total for c in self.counts.values()):
            raise InvalidInput("term frequencies need a positive total and counts within it")
        object.__setattr__(self, "counts", MappingProxyType(dict(self.counts)))

    def frequency(self, value: str) -> float:
        """The share of members holding ``value`` (a value not in the table: held once)."""
        return self.counts.get(value, 1) / self.total


def count_term_frequencies(
    records: Iterable[StandardRecord], spec: ComparisonSpec
) -> dict[str, TermFrequencies]:
    """Per comparison of ``spec`` that names a term-frequency field, its counted table."""
    fields = {c.name: c.term_frequency for c in spec.comparisons if c.term_frequency}
    if not fields:
        return {}
    getters = {name: attrgetter(field) for name, field in fields.items()}
    counters: dict[str, Counter[str]] = {name: Counter() for name in fields}
    by_year = [name for name in _BY_BIRTH_YEAR if name in fields]
    counters.update({cohort_key(name): Counter() for name in by_year})
    years: Counter[str] = Counter()
    for record in records:
        year = record.birth_date[:4] if record.birth_date else None
        if year:
            years[year] += 1
        for name, value_of in getters.items():
            value = value_of(record)
            if value:
                counters[name][value] += 1
                if year and name in by_year:
                    counters[cohort_key(name)][f"{value}|{year}"] += 1
    tables = {
        name: TermFrequencies(
            sum(counter.values()), {value: n for value, n in counter.items() if n > 1}
        )
        for name, counter in counters.items()
        if counter
    }
    if years and any(cohort_key(name) in tables for name in by_year):
        tables[BIRTH_YEARS] = TermFrequencies(sum(years.values()), dict(years))
    return tables
