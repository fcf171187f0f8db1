"""Term frequencies: agreement on a rare name is worth more than agreement on a common one."""

from __future__ import annotations

import json
import math

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.frequencies import TermFrequencies, count_term_frequencies
from payerbridge.identity.matching.scoring import MatchModel, default_model, score
from payerbridge.identity.matching.spec import DEFAULT_SPEC


def _people() -> list[dict[str, object]]:
    smiths = [{"given": ["John"], "family": "Smith"} for _ in range(8)]
    return [*smiths, {"given": ["Zephyrine"], "family": "Quisenberry"}, {"given": ["Ana"]}]


def test_counts_keep_values_held_twice_and_count_the_rest_once() -> None:
    tables = count_term_frequencies(
        [standard_record(Demographics(**p)) for p in _people()], DEFAULT_SPEC
    )
    assert set(tables) == {"given_name", "family_name"}
    given, family = tables["given_name"], tables["family_name"]
    assert (given.total, dict(given.counts)) == (10, {"john": 8})
    assert (family.total, dict(family.counts)) == (9, {"smith": 8})
    assert family.frequency("smith") == pytest.approx(8 / 9)
    assert family.frequency("quisenberry") == family.frequency("never-seen") == pytest.approx(1 / 9)


def test_rare_names_weigh_more_than_common_ones_and_the_average_is_gone() -> None:
    frequencies = {
        "given_name": TermFrequencies(1_000_000, {"john": 30_000, "zephyrine": 2}),
        "family_name": TermFrequencies(1_000_000, {"smith": 10_000}),
    }
    model = default_model().with_population(frequencies)
    given = DEFAULT_SPEC.index("given_name")

    def weight(name: str) -> float:
        record = standard_record(Demographics(given=[name], birth_date="1980-02-03"))
        return score(model, record, record).match_weights[given]

    average = default_model().level_weights[given][1]
    assert weight("Zephyrine") > average > weight("John")
    # A name the table does not hold is held once: the rarest there is.
    assert weight("Xiomara") > weight("Zephyrine")


def test_tables_travel_with_the_model_and_change_its_version() -> None:
    frequencies = {"family_name": TermFrequencies(100, {"smith": 5})}
    model = default_model().with_population(frequencies)
    assert model.version != default_model().version
    loaded = MatchModel.from_json(model.to_json())
    assert loaded == model and dict(loaded.term_frequencies["family_name"].counts) == {"smith": 5}
    data = json.loads(model.to_json())
    data["term_frequencies"]["sex"] = {"total": 2, "counts": {}}
    data.pop("version")
    with pytest.raises(InvalidInput, match="no frequency field"):
        MatchModel.from_json(json.dumps(data))


def test_a_table_with_counts_beyond_its_total_is_refused() -> None:
    with pytest.raises(InvalidInput):
        TermFrequencies(3, {"smith": 4})


def test_given_names_are_counted_per_birth_year_too() -> None:
    people = [
        *({"given": ["Nevaeh"], "birth_date": "2008-05-01"} for _ in range(3)),
        {"given": ["Nevaeh"], "birth_date": "1950-05-01"},
        *({"given": ["Ann"], "birth_date": f"19{y}-01-02"} for y in range(50, 56)),
    ]
    tables = count_term_frequencies(
        [standard_record(Demographics(**p)) for p in people], DEFAULT_SPEC
    )
    assert dict(tables["given_name|birth_year"].counts) == {"nevaeh|2008": 3}
    assert dict(tables["birth_year"].counts) == {
        "2008": 3,
        "1950": 2,
        **{f"19{y}": 1 for y in range(51, 56)},
    }


# A million members: Nevaeh is held by 20 of them, 16 of whom were born in 2008 (12,500
# members were).
COHORTS = {
    "given_name": TermFrequencies(1_000_000, {"nevaeh": 20}),
    "given_name|birth_year": TermFrequencies(1_000_000, {"nevaeh|2008": 16}),
    "birth_year": TermFrequencies(1_000_000, {"2008": 12_500, "1990": 14_000}),
}


def test_a_name_is_weighed_among_those_born_in_the_pairs_year() -> None:
    """Rare in the plan, Nevaeh is one child in 780 born in 2008: a stranger born that year
    who shares it is likelier than the plan-wide frequency says (by thirteen times, once
    the few members of that year are drawn towards the plan's frequency)."""
    model = default_model().with_population(COHORTS)
    plain = default_model().with_population({"given_name": COHORTS["given_name"]})
    given = DEFAULT_SPEC.index("given_name")

    def weight(of: MatchModel, birth: str, other: str) -> float:
        a = standard_record(Demographics(given=["Nevaeh"], birth_date=birth))
        b = standard_record(Demographics(given=["Nevaeh"], birth_date=other))
        return score(of, a, b).match_weights[given]

    exact = DEFAULT_SPEC.comparisons[given].levels[0].m_probability
    # 16 of the 12,500 born in 2008, drawn towards the plan's 20 in a million by the
    # 50,000 members among whom the name is held once.
    assert weight(model, "2008-05-01", "2008-01-05") == pytest.approx(
        math.log2(exact / (16 / (12_500 + 50_000)))
    )
    assert weight(plain, "2008-05-01", "2008-01-05") == pytest.approx(
        math.log2(exact / (20 / 1_000_000))
    )
    # Born in years apart, or in a year where fewer than two hold it: the plan's frequency.
    assert weight(model, "2008-05-01", "2009-05-01") == weight(plain, "2008-05-01", "2009-05-01")
    assert weight(model, "1990-05-01", "1990-01-05") == weight(plain, "1990-05-01", "1990-01-05")


def test_tables_per_birth_year_travel_with_the_model_and_need_their_tables() -> None:
    model = default_model().with_population(COHORTS)
    assert MatchModel.from_json(model.to_json()) == model
    assert (
        model.version
        != default_model().with_population({"given_name": COHORTS["given_name"]}).version
    )
    with pytest.raises(InvalidInput, match="per birth year"):
        default_model().with_population({"given_name|birth_year": COHORTS["given_name"]})
