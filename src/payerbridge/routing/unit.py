"""The routing room's unit of work (ADR 0051): what enrolling a partner, reading its
capabilities again and setting how it is run take. ``with uow:`` is one transaction;
the directory writes in ``uow`` itself while one is in progress and reads the last
commit outside."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.routing.ports import PartnerDiscovery, PartnerProposals, PartnerRegistry
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["DirectoryUnit", "PartnersUnit"]


@dataclass
class PartnersUnit(RoomUnit):
    transactions: Transactions
    partners: PartnerRegistry  # the partner directory, its capability readings, operations
    discovery: PartnerDiscovery  # a partner's discovery documents; UDAP registration


@dataclass
class DirectoryUnit(PartnersUnit):
    """The partner directory's unit with the proposals directory imports hold for an
    operator (``directory_import``); a ``PartnersUnit``, so that an approval registers
    through ``enrol_partner``."""

    proposals: PartnerProposals
