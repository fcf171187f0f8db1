"""The compliance room's unit of work (ADR 0051): what the data lifecycle's use cases
(legal holds, erasure, the purge) and the compliance report take. ``with uow:`` is one
transaction; the lifecycle store writes in ``uow`` itself while one is in progress."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.compliance.clocks import ClockReader
from payerbridge.compliance.lifecycle_rules import HoldPolicy, Retention
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.compliance.ports import LifecycleStore
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["ComplianceUnit"]


@dataclass
class ComplianceUnit(RoomUnit):
    transactions: Transactions
    lifecycle: LifecycleStore  # legal holds, the purge and erasure (ADR 0038)
    holds: HoldPolicy  # who may release a legal hold (ADR 0046)
    retention: Retention  # how long raw payloads and requests are kept after they end
    obligations: ObligationSet  # the rule's clocks on the plan's calendar (ADR 0037)
    clock_reader: ClockReader  # the obligation rows, read for the compliance report
