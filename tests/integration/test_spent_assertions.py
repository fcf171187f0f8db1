"""The upkeep forgets the client assertions spent at the token endpoint once they could
no longer pass the exp check, and only those: a live one's jti stays, and using it again
is still a replay (RFC 7523 §3, SMART Backend Services)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payerbridge.bootstrap import Platform
from payerbridge.errors import StoreConflict
from payerbridge.security.spent_assertions import ForgetSpentAssertions, forget_spent_assertions
from payerbridge.types import ClientId

CLIENT = ClientId("newplan")


def test_the_upkeep_forgets_the_expired_assertions_and_keeps_the_live_ones(
    platform: Platform,
) -> None:
    uow = platform.units.security()
    ledger = uow.tokens.assertions
    with uow:
        now = uow.now
        ledger.remember(uow, CLIENT, "spent-long-ago", until=now - timedelta(minutes=1))
        ledger.remember(uow, CLIENT, "still-live", until=now + timedelta(hours=1))

    assert forget_spent_assertions(ForgetSpentAssertions(), platform.units.security()) == 1

    with pytest.raises(StoreConflict), uow:  # the live one is remembered: a replay
        ledger.remember(uow, CLIENT, "still-live", until=now + timedelta(hours=1))
    with uow:  # the expired one was forgotten: its jti is free again
        ledger.remember(uow, CLIENT, "spent-long-ago", until=now + timedelta(hours=1))
    assert forget_spent_assertions(ForgetSpentAssertions(), platform.units.security()) == 0
