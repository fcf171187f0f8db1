"""The review queue's order: oldest and riskiest first, total and stable; each case's risk
read from its evidence; page tokens."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, Matcher, decide
from payerbridge.identity.matching.model import DecisionId, MatchOutcome
from payerbridge.identity.matching.scoring import default_model
from payerbridge.identity.model import QueuePosition
from payerbridge.identity.review_queue import (
    MAX_WAIT,
    MIN_WAIT,
    CaseSignals,
    decode_position,
    encode_position,
    in_queue_order,
    priority_of,
    review_opening,
    review_risk,
    signals_of,
    signals_of_stored,
)
from payerbridge.types import MemberId
from tests.builders import a_coverage, a_patient

T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)

risks = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
instants = st.integers(min_value=0, max_value=14 * 24 * 3600 * 1000).map(
    lambda ms: T0 + timedelta(milliseconds=ms)
)
case_ids = st.text(alphabet="0123456789abcdef-", min_size=1, max_size=12)
cases = st.lists(st.tuples(case_ids, risks, instants), max_size=40, unique_by=lambda c: c[0])


def position(case: tuple[str, float, datetime]) -> QueuePosition:
    review_id, risk, opened_at = case
    return QueuePosition(priority_of(risk, opened_at).due_at, review_id)


@given(cases, st.randoms(use_true_random=False))
def test_the_order_is_total_and_does_not_depend_on_the_order_cases_come_in(
    found: list[tuple[str, float, datetime]], shuffler: random.Random
) -> None:
    ordered = in_queue_order(position(c) for c in found)
    shuffled = list(found)
    shuffler.shuffle(shuffled)
    assert in_queue_order(position(c) for c in shuffled) == ordered
    # Total: no two cases tie (the id breaks ties of the same due time).
    assert len(set(ordered)) == len(found)


@given(risks, instants, instants, case_ids, case_ids)
def test_of_two_cases_of_the_same_risk_the_older_is_never_after_the_younger(
    risk: float, opened: datetime, other: datetime, first_id: str, second_id: str
) -> None:
    older, younger = sorted((opened, other))
    if first_id == second_id or older == younger:
        return
    ordered = in_queue_order(
        [position((second_id, risk, younger)), position((first_id, risk, older))]
    )
    assert ordered[0].id == first_id


@given(risks, risks, instants)
def test_of_two_cases_opened_together_the_riskier_is_never_after_the_other(
    risk: float, other: float, opened: datetime
) -> None:
    riskier, safer = sorted((risk, other), reverse=True)
    assert priority_of(riskier, opened).due_at <= priority_of(safer, opened).due_at


@given(risks, instants)
def test_every_case_is_due_within_the_waits(risk: float, opened: datetime) -> None:
    priority = priority_of(risk, opened)
    assert opened + MIN_WAIT <= priority.due_at <= opened + MAX_WAIT
    assert 0.0 <= priority.risk <= 1.0
    # A low-risk case is overtaken only by cases due before it: none waits for ever.
    assert priority_of(0.0, opened).due_at == opened + MAX_WAIT


def signals(**changed: object) -> CaseSignals:
    base: dict[str, object] = {
        "policy_version": SINGLE_EXCHANGE.version,
        "best_weight": 8.0,
        "runner_up_weight": None,
        "guards": (),
        "household_evidence": False,
    }
    return CaseSignals(**{**base, **changed})  # type: ignore[arg-type]


def test_relatives_rivals_and_uncertainty_each_raise_the_risk() -> None:
    plain = review_risk(signals())
    assert review_risk(signals(guards=("given_name_conflict",))) > plain
    assert review_risk(signals(household_evidence=True)) > plain
    assert review_risk(signals(guards=("member_id_mismatch",))) > plain
    # A relative's guard weighs more than another guard.
    assert review_risk(signals(guards=("birth_date_conflict",))) > review_risk(
        signals(guards=("suffix_conflict",))
    )
    assert review_risk(signals(runner_up_weight=7.0)) > review_risk(signals(runner_up_weight=0.0))
    assert review_risk(signals(runner_up_weight=-5.0)) == plain  # far behind: no rival
    # Near the review band's floor is more uncertain than near the auto band.
    assert review_risk(signals(best_weight=0.5)) > review_risk(signals(best_weight=13.0))
    # An unknown policy's bands: the middle.
    assert review_risk(signals(policy_version="custom-1")) == pytest.approx(0.15)
    everything = signals(best_weight=0.0, runner_up_weight=0.0, guards=("given_name_conflict",))
    assert review_risk(everything) == 1.0


@given(
    st.floats(min_value=-60, max_value=60),
    st.one_of(st.none(), st.floats(min_value=-60, max_value=60)),
    st.lists(st.sampled_from(["given_name_conflict", "suffix_conflict", "ssn_mismatch"])),
    st.booleans(),
    st.sampled_from([SINGLE_EXCHANGE.version, BULK.version, "other-1"]),
)
def test_risk_is_between_zero_and_one(
    best: float, runner_up: float | None, guards: list[str], household: bool, policy: str
) -> None:
    risk = review_risk(CaseSignals(policy, best, runner_up, tuple(guards), household))
    assert 0.0 <= risk <= 1.0 and round(risk, 3) == risk


def test_a_review_decision_is_ranked_alike_from_its_evidence_and_from_its_stored_form() -> None:
    """A case opened now and one ranked by the migration from its stored evidence stand
    in the same place."""
    patient = a_patient("p1", given="Noor", birth_date="1991-11-30", member_id="Z900")
    home = [{"use": "home", "line": ["12 Oak Street"], "postalCode": "62701"}]
    member = record_from_fhir({**patient, "address": home}, a_coverage("c1", patient="p1"))
    # A first name a letter off, and no card to confirm it: a reviewer's call.
    request = record_from_fhir(
        {**a_patient("r", given="Nour", birth_date="1991-11-30", member_id=None), "address": home},
        None,
    )
    decision = decide(
        request,
        [(MemberId("p1"), member)],
        Matcher(default_model(), SINGLE_EXCHANGE),
        T0,
        DecisionId("d1"),
    )
    assert decision.outcome is MatchOutcome.REVIEW, decision.evidence.to_dict()
    proposed = decision.candidate_ids
    live = signals_of(decision.evidence, proposed)
    assert signals_of_stored(decision.evidence.to_stored(), proposed) == live
    assert signals_of_stored(decision.evidence.to_dict(), proposed) == live
    opening = review_opening("case-1", request, decision.evidence, proposed)
    assert opening.policy == "single_exchange" and opening.request is request
    assert opening.priority == priority_of(review_risk(live), T0)
    assert signals_of_stored({}, ()) == CaseSignals("", None, None, (), False)


@given(instants, case_ids)
def test_a_page_token_names_the_position_it_was_made_from(due: datetime, review_id: str) -> None:
    assert decode_position(encode_position(QueuePosition(due, review_id))) == QueuePosition(
        due, review_id
    )


@pytest.mark.parametrize(
    "token", ["", "nonsense", "W10", encode_position(QueuePosition(T0, "x"))[:-3] + "!!!"]
)
def test_a_token_we_did_not_give_out_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput, match="page token"):
        decode_position(token)
