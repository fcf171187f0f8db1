"""The routing room's unit of work (ADR 0051): what enrolling a partner, reading its
capabilities again and setting how it is run take. ``with uow:`` is one transaction;
the directory writes in ``uow`` itself while one is in progress and reads the last
commit outside."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["PartnersUnit"]


@dataclass
class PartnersUnit(RoomUnit):
    transactions: Transactions
    partners: PartnerRegistry  # the partner directory, its capability readings, operations
    discovery: PartnerDiscovery  # a partner's discovery documents; UDAP registration
