"""The delivery room's unit (ADR 0053): each destination the sources file names, with
its retry policy, over the SQL deliveries and the received records; None when the file
names no destination (then nothing is delivered, and nothing else changes)."""

from __future__ import annotations

import random

from payerbridge.backends.sources import Sources
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.net.addresses import AddressPolicy
from payerbridge.sources.adapters import destination_adapters
from payerbridge.store.deliveries import SqlDeliveryStore, SqlHeldRecords
from payerbridge.wiring.stores import Stores

__all__ = ["destination_unit"]


def destination_unit(
    sources: Sources, stores: Stores, egress: AddressPolicy, segmentation: SegmentationPolicy
) -> DestinationUnit | None:
    if not sources.destinations:
        return None
    adapters, policies = destination_adapters(sources, egress)
    return DestinationUnit(
        stores.transactions,
        SqlDeliveryStore(stores.engine, reader=stores.reader),
        stores.exchanges,
        SqlHeldRecords(stores.engine, reader=stores.reader),
        adapters,
        policies,
        random=random.random,
        segmentation=segmentation,
    )
