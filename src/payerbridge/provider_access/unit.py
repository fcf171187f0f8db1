"""Provider Access's unit of work (ADR 0051, ADR 0059): what its use cases take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.provider_access.decisions import ProviderAccessReads
from payerbridge.provider_access.ports import AttributionStore, OptOutStore, ServiceRecords
from payerbridge.routing.model import Organization
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["ProviderAccessUnit"]


@dataclass
class ProviderAccessUnit(RoomUnit):
    transactions: Transactions
    attributions: AttributionStore
    opt_outs: OptOutStore
    records: ServiceRecords  # the plan's own claims and encounters
    us: Organization
    clock: Callable[[], datetime]
    calendar: BusinessCalendar  # the plan's days: an attribution holds on whole days there

    @property
    def reads(self) -> ProviderAccessReads:
        return ProviderAccessReads(self.attributions, self.opt_outs, self.calendar)
