"""The client assertions spent at the token endpoint: each jti is remembered until the
assertion could no longer pass the exp check (a replay is refused meanwhile), then
forgotten by the upkeep, ``forget_spent_assertions(command, uow)`` on the
``SecurityUnit``."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.security.unit import SecurityUnit

__all__ = ["ForgetSpentAssertions", "forget_spent_assertions"]


@dataclass(frozen=True)
class ForgetSpentAssertions:
    """The upkeep's tick: what is forgotten is what expired by the unit's ``now``."""


def forget_spent_assertions(command: ForgetSpentAssertions, uow: SecurityUnit) -> int:
    """Drop the jti of assertions that can no longer pass the exp check; how many."""
    with uow:
        return uow.tokens.assertions.forget_expired(uow, now=uow.now)
