"""Fellegi-Sunter scoring: weights, the household cap, the model artefact, and its properties."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.scoring import (
    MatchModel,
    comparison_vector,
    default_model,
    match_weight_of,
    probability_from_weight,
    score,
)
from payerbridge.identity.matching.spec import DEFAULT_SPEC

MODEL = default_model()

HOUSEHOLD = {
    "family": "Garcia",
    "address_lines": ["12 Oak St"],
    "postal_code": "62701",
    "phone": "2175550101",
    "subscriber_id": "S1",
}


def test_weights_are_log2_of_m_over_u_and_null_is_zero() -> None:
    comparison = DEFAULT_SPEC.comparisons[DEFAULT_SPEC.index("birth_date")]
    weights = MODEL.level_weights[DEFAULT_SPEC.index("birth_date")]
    assert weights[0] == 0.0
    exact = comparison.levels[0]
    assert weights[1] == pytest.approx(math.log2(exact.m_probability / exact.u_probability))


def test_total_is_prior_plus_weights_and_probability_matches() -> None:
    a = standard_record(Demographics(given=["Ana"], birth_date="1980-02-03", sex="female"))
    pair = score(MODEL, a, a)
    assert pair.household_adjustment == 0.0
    assert pair.match_weight == pytest.approx(MODEL.prior_weight + sum(pair.match_weights))
    assert pair.match_probability == pytest.approx(probability_from_weight(pair.match_weight))


def test_probability_from_weight_does_not_overflow() -> None:
    assert probability_from_weight(5000.0) == 1.0
    assert probability_from_weight(-5000.0) == 0.0
    assert probability_from_weight(0.0) == 0.5


def test_household_fields_are_weighed_jointly() -> None:
    """Surname, address, ZIP, phone and subscriber id agreeing: in a plan of families they
    say "same household" about as strongly as the strongest of them alone; among unrelated
    people (no household shared) they add up."""
    a = standard_record(Demographics(given=["Ana"], birth_date="1980-02-03", **HOUSEHOLD))
    b = standard_record(Demographics(given=["Ana"], birth_date="1980-02-03", **HOUSEHOLD))
    pair = score(MODEL, a, b)
    shared = [
        w
        for w, level, flags in zip(
            pair.match_weights, pair.levels, DEFAULT_SPEC.household_shared, strict=True
        )
        if flags[level] and w > 0
    ]
    assert len(shared) == 5
    assert pair.match_weight == pytest.approx(
        MODEL.prior_weight + sum(pair.match_weights) + pair.household_adjustment
    )
    group = sum(shared) + pair.household_adjustment
    assert max(shared) <= group < max(shared) + 2.0
    unrelated = MODEL.with_population({}, household_pair_probability=0.0)
    apart = score(unrelated, a, b)
    assert sum(shared) <= sum(shared) + apart.household_adjustment < sum(shared) + 2.0


MOVED: dict[str, Any] = {
    "given": ["Ana"],
    "birth_date": "1980-02-03",
    "family": "Garcia",
    "address_lines": ["9 Elm Rd"],
    "postal_code": "10001",
    "phone": "3125559999",
}


def test_a_move_is_one_disagreement_and_other_household_disagreements_still_count() -> None:
    """A member who moved disagrees on street, ZIP and phone at once: the residence counts
    its strongest disagreement only. A new surname is a second, separate disagreement."""
    a = standard_record(Demographics(given=["Ana"], birth_date="1980-02-03", **HOUSEHOLD))
    pair = score(MODEL, a, standard_record(Demographics(**MOVED)))
    residence = [DEFAULT_SPEC.index(n) for n in ("street_address", "postal_code", "phone")]
    disagreements = [pair.match_weights[i] for i in residence]
    assert all(w < 0 for w in disagreements)
    others = sum(w for i, w in enumerate(pair.match_weights) if i not in residence)
    assert pair.match_weight == pytest.approx(MODEL.prior_weight + others + min(disagreements))
    assert pair.household_adjustment == pytest.approx(min(disagreements) - sum(disagreements))

    married = score(MODEL, a, standard_record(Demographics(**{**MOVED, "family": "Ruiz"})))
    surname = DEFAULT_SPEC.index("family_name")
    assert married.match_weights[surname] < 0
    assert married.match_weight == pytest.approx(
        pair.match_weight - pair.match_weights[surname] + married.match_weights[surname]
    )


def test_fast_path_agrees_with_score() -> None:
    a = standard_record(Demographics(given=["Bill"], birth_date="1980-02-03", **HOUSEHOLD))
    b = standard_record(
        Demographics(given=["William"], birth_date="1980-03-02", member_id="X", **HOUSEHOLD)
    )
    assert (
        match_weight_of(MODEL, comparison_vector(DEFAULT_SPEC, a, b))
        == score(MODEL, a, b).match_weight
    )


def test_model_round_trips_through_json_with_a_stable_version() -> None:
    text = MODEL.to_json()
    loaded = MatchModel.from_json(text)
    assert loaded == MODEL and loaded.version == MODEL.version
    assert json.loads(text)["version"] == MODEL.version
    assert MODEL.version == default_model().version
    assert default_model(probability_two_random_records_match=1e-5).version != MODEL.version


def test_model_from_json_refuses_tampering_and_other_specs() -> None:
    data = json.loads(MODEL.to_json())
    data["comparisons"][0]["levels"][0]["m_probability"] = 0.5
    with pytest.raises(InvalidInput, match="version"):
        MatchModel.from_json(json.dumps(data))
    data = json.loads(MODEL.to_json())
    data["spec_fingerprint"] = "spec-other"
    with pytest.raises(InvalidInput, match="another matching spec"):
        MatchModel.from_json(json.dumps(data))
    for broken in ("{", "[]", json.dumps({"format": "payerbridge.identity.fellegi-sunter/1"})):
        with pytest.raises(InvalidInput):
            MatchModel.from_json(broken)


def test_model_rejects_bad_parameters() -> None:
    with pytest.raises(InvalidInput):
        default_model(probability_two_random_records_match=1.0)
    with pytest.raises(InvalidInput):
        MatchModel(DEFAULT_SPEC, 0.01, MODEL.m_probabilities[:-1], MODEL.u_probabilities)


# --- properties -----------------------------------------------------------------------------

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "given": st.sampled_from(
        [
            ["Bill"],
            ["William"],
            ["Wiliam"],
            ["W."],
            ["Ana"],
            ["Anna"],
            ["Mia"],
            ["Mai"],
            ["Ann", "Marie"],
            ["Marie"],
        ]
    ),
    "family": st.sampled_from(["Garcia", "Garcia-Lopez", "Lopez", "Garcai", "Smith"]),
    "previous_families": st.sampled_from([[], ["Smith"], ["Lopez"]]),
    "suffixes": st.sampled_from([["Jr"], ["Sr"], ["III"]]),
    "birth_date": st.sampled_from(
        ["1980-02-03", "1980-03-02", "1980-02-08", "1990-02-03", "1981-02-03", "2001-11-30"]
    ),
    "sex": st.sampled_from(["male", "female"]),
    "address_lines": st.sampled_from(
        [["12 Oak St"], ["12 Oak Street", "Apt 2"], ["12 Oka St"], ["14 Oak St"], ["PO Box 3"]]
    ),
    "postal_code": st.sampled_from(["62701", "62704", "10001"]),
    "phone": st.sampled_from(["2175550101", "2175550110", "3125550000"]),
    "member_id": st.sampled_from(["M1234", "M1243", "S1", "Q9"]),
    "subscriber_id": st.sampled_from(["S1", "S2", "M1234"]),
    "ssn": st.sampled_from(["123-45-6780", "123-45-6781", "234-56-7890"]),
    "ssn_carried": st.booleans(),
}


@st.composite
def raw_records(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.sets(st.sampled_from(sorted(FIELD_VALUES))))
    return {name: draw(FIELD_VALUES[name]) for name in chosen}


@given(raw_records(), raw_records())
@settings(max_examples=200)
def test_score_is_symmetric(left: dict[str, Any], right: dict[str, Any]) -> None:
    a, b = standard_record(Demographics(**left)), standard_record(Demographics(**right))
    assert score(MODEL, a, b) == score(MODEL, b, a)


# Fields that can be filled independently; filling one never changes another comparison.
FILLABLE = sorted(set(FIELD_VALUES) - {"previous_families", "ssn_carried"})


@given(raw_records(), raw_records(), st.sampled_from(FILLABLE), st.data())
@settings(max_examples=200)
def test_adding_agreeing_evidence_never_lowers_the_score(
    left: dict[str, Any], right: dict[str, Any], field: str, data: st.DataObject
) -> None:
    value = data.draw(FIELD_VALUES[field])
    # A subscriber id equal to the member id is not more evidence but a reading of the
    # member id: the subscriber's card, which relatives show too (household evidence).
    assume(
        not (field == "subscriber_id" and value in (left.get("member_id"), right.get("member_id")))
    )
    left.pop(field, None)
    right.pop(field, None)
    before = score(
        MODEL, standard_record(Demographics(**left)), standard_record(Demographics(**right))
    ).match_weight
    after = score(
        MODEL,
        standard_record(Demographics(**left, **{field: value})),
        standard_record(Demographics(**right, **{field: value})),
    ).match_weight
    assert after >= before - 1e-9
