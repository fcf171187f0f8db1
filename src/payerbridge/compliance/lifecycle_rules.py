"""The data lifecycle's rules as the plan set them (ADR 0038, ADR 0046): who may release
a legal hold, and how long what the purge acts on is kept after its work ended. Apart
from the use cases (``lifecycle``) so that the room's unit carries them without an
import circle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from payerbridge.compliance.model import Hold

__all__ = ["HoldPolicy", "Retention"]


@dataclass(frozen=True)
class HoldPolicy:
    """Who may release a hold: the principal that placed it, or one of ``counsel``
    (the plan's ``PAYERBRIDGE_HOLD_COUNSEL``)."""

    counsel: frozenset[str] = frozenset()

    def may_release(self, hold: Hold, principal: str) -> bool:
        return principal in self.counsel or (
            hold.placed_by_principal is not None and hold.placed_by_principal == principal
        )

    def who_may_release(self, hold: Hold) -> str:
        placer = hold.placed_by_principal
        counsel = ", ".join(sorted(self.counsel)) or "none is named: PAYERBRIDGE_HOLD_COUNSEL"
        if placer is None:
            return f"counsel ({counsel}); it was placed before holds named their principal"
        return f"the principal that placed it ({placer}) or counsel ({counsel})"


@dataclass(frozen=True)
class Retention:
    """How long what the purge acts on is kept after its work ended."""

    raw_payload_grace: timedelta
    request_grace: timedelta
