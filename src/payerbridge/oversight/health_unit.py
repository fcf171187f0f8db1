"""The unit of work (ADR 0051) of what operators read about partners: each partner's
health (its breaker, its recent calls and probes, its maintenance windows), its dead
letters and its exchanges of the last day, for the console, ``GET
/partners/{id}/health`` and ``payerbridge partners health``. Apart from the routing
room's ``PartnersUnit``, which the directory's use cases take: the routing room may not
import the exchange room's breakers nor these reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from payerbridge.exchange.ports import BreakerBoard, ExchangeStore
from payerbridge.oversight.ports import Oversight, PartnerCalls
from payerbridge.routing.ports import PartnerRegistry
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["PartnerHealthUnit"]


@dataclass
class PartnerHealthUnit(RoomUnit):
    transactions: Transactions
    partners: PartnerRegistry  # the directory and each partner's capability reading
    breakers: BreakerBoard  # each endpoint's breaker as it was last recorded
    calls: PartnerCalls  # each partner's recent calls and probes (the audit trail's)
    exchanges: ExchangeStore  # the dead letters counted, and each replayed one read
    oversight: Oversight  # partners' exchanges of a period, a partner's last refresh
    clock: Callable[[], datetime]  # the time now, for a breaker as it stands
