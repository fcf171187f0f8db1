import itertools

import pytest

from payerbridge.errors import IllegalTransition
from payerbridge.exchange.model import ExchangeState as S
from payerbridge.exchange.model import check_transition

HAPPY = [
    S.SUBMITTED,
    S.VALIDATED,
    S.CONSENT_VERIFIED,
    S.ROUTE_SELECTED,
    S.MEMBER_MATCHED,
    S.RETRIEVING,
    S.RECEIVED,
    S.NORMALIZED,
    S.COMPLETED,
]


def test_the_happy_path_is_legal_step_by_step() -> None:
    check_transition(None, S.SUBMITTED)
    for current, target in itertools.pairwise(HAPPY):
        check_transition(current, target)


def test_an_exchange_can_only_start_submitted() -> None:
    for state in S:
        if state is not S.SUBMITTED:
            with pytest.raises(IllegalTransition):
                check_transition(None, state)


@pytest.mark.parametrize(
    "current,target",
    [
        (S.SUBMITTED, S.COMPLETED),
        (S.VALIDATED, S.MEMBER_MATCHED),
        (S.RECEIVED, S.RETRIEVING),
        (S.COMPLETED, S.FAILED),
        (S.FAILED, S.SUBMITTED),
        (S.NORMALIZED, S.NORMALIZED),
    ],
)
def test_skipping_going_back_or_leaving_a_terminal_state_is_illegal(current: S, target: S) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, target)


def test_every_non_terminal_state_can_fail_and_terminal_states_are_final() -> None:
    for state in S:
        if state in (S.COMPLETED, S.FAILED):
            for target in S:
                with pytest.raises(IllegalTransition):
                    check_transition(state, target)
        else:
            check_transition(state, S.FAILED)
