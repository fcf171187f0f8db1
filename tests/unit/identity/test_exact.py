from payerbridge.identity.model import MatchOutcome, decide_exact, normalize_name
from tests.builders import a_patient


def test_names_compare_without_case_or_accents() -> None:
    assert normalize_name(" GARCÍA ") == normalize_name("garcia")


def test_one_agreeing_candidate_is_a_match() -> None:
    decision = decide_exact(
        a_patient("req", family="GARCÍA"), [a_patient("p1"), a_patient("p2", given="Luis")]
    )
    assert (decision.outcome, decision.member_id) == (MatchOutcome.MATCH, "p1")
    assert decision.candidates_considered == 2


def test_twins_with_the_same_first_name_are_multiple_never_a_pick() -> None:
    decision = decide_exact(a_patient("req"), [a_patient("p1"), a_patient("p2")])
    assert decision.outcome is MatchOutcome.MULTIPLE and decision.member_id is None


def test_birth_date_or_gender_disagreement_is_no_match() -> None:
    assert (
        decide_exact(a_patient("req"), [a_patient("p1", birth_date="1980-03-02")]).outcome
        is MatchOutcome.NO_MATCH
    )
    assert (
        decide_exact(a_patient("req"), [a_patient("p1", gender="male")]).outcome
        is MatchOutcome.NO_MATCH
    )
    assert decide_exact(a_patient("req"), []).outcome is MatchOutcome.NO_MATCH
