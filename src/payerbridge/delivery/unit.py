"""The delivery room's unit of work (ADR 0051): the deliveries, the exchanges they carry,
what was received, the destinations with their policies, and the jitter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from payerbridge.consent.segmentation import DEFAULT_SEGMENTATION, SegmentationPolicy
from payerbridge.delivery.model import DestinationPolicy
from payerbridge.delivery.ports import DeliveryStore, Destination, HeldRecords
from payerbridge.exchange.ports import ExchangeStore
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["DestinationUnit"]


@dataclass
class DestinationUnit(RoomUnit):
    transactions: Transactions
    deliveries: DeliveryStore
    exchanges: ExchangeStore
    held: HeldRecords
    destinations: Mapping[str, Destination]
    policies: Mapping[str, DestinationPolicy] = field(default_factory=dict)
    random: Callable[[], float] = lambda: 0.5
    # What a regular consent would withhold, labelled on what goes (ADR 0052).
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION
