"""The onboarding room's unit of work (ADR 0051): plan-year onboardings (new payer),
through the room's ports (``OnboardingPorts``, whose use cases still open their own
transactions on ``transactions``)."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.onboarding.ports import OnboardingPorts
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["OnboardingUnit"]


@dataclass
class OnboardingUnit(RoomUnit):
    transactions: Transactions
    ports: OnboardingPorts  # the onboardings, the partners, the bulk client, the writer
