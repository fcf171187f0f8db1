"""``bench console``'s exchanges: each end drawn is reached by moves the state machine
allows, and each request is one the API would take."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.exchange.model import ExchangeState, check_transition
from payerbridge.types import PartnerId
from payerbridge_tools.bench.console_data import ENDS, moves_to, request_document
from payerbridge_tools.bench.identity_data import generate_identity_set

_REACHES = {
    "completed": "completed",
    "no-match": "failed",
    "partner-error": "failed",
    "no-route": "failed",
    "cancelled": "failed",
    "partial": "partial",
    "conflict": "conflict",
    "dead-lettered": "dead_lettered",
    "revoked": "blocked",
    "expired": "blocked",
    "partner-review": "manual_review",
    "waiting": "route_selected",
    "submitted": "submitted",
}


@pytest.mark.parametrize("end", [name for name, _ in ENDS])
def test_each_end_is_reached_by_moves_the_state_machine_allows(end: str) -> None:
    state = ExchangeState.SUBMITTED
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for move in moves_to(end, "https://plan.example/fhir", at, random.Random(1)):
        check_transition(state, move.target)
        state = move.target
    assert state.value == _REACHES[end]
    if state.value in ("failed", "blocked", "dead_lettered", "partial", "conflict"):
        assert move.reason_code  # a stop always says why (its runbook's code)


def test_the_shares_are_per_thousand_and_every_request_is_one_the_api_takes() -> None:
    assert sum(share for _, share in ENDS) == 1000 and set(_REACHES) == {n for n, _ in ENDS}
    data = generate_identity_set(200, seed=3, requests=0)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(data.member_count):
        document = request_document(data, i, PartnerId("plan-1"), at)
        created = ExchangeCreate.model_validate(document)
        assert created.new_coverage.member_id == data.member_id(i)
