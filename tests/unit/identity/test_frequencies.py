"""Term frequencies: agreement on a rare name is worth more than agreement on a common one."""

from __future__ import annotations

import json

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.identity.frequencies import TermFrequencies, count_term_frequencies
from payerbridge.identity.scoring import MatchModel, default_model, score
from payerbridge.identity.spec import DEFAULT_SPEC
from payerbridge.identity.standardize import standard_record


def _people() -> list[dict[str, object]]:
    smiths = [{"given": ["John"], "family": "Smith"} for _ in range(8)]
    return [*smiths, {"given": ["Zephyrine"], "family": "Quisenberry"}, {"given": ["Ana"]}]


def test_counts_keep_values_held_twice_and_count_the_rest_once() -> None:
    tables = count_term_frequencies([standard_record(**p) for p in _people()], DEFAULT_SPEC)
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
        record = standard_record(given=[name], birth_date="1980-02-03")
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
