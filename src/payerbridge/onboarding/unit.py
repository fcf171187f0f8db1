"""The onboarding room's unit of work (ADR 0051): what every onboarding use case takes.

A use case is ``use_case(command, uow)``. The unit carries the room's store (the runs,
their chunks and members), the old payer's Bulk Data endpoints, and what is not a store:
who we are, the clock, where date-only opt-ins are read, the chunk size. ``with uow:`` is
one transaction, committed when the block ends and rolled back if it raises; each call
of ``proceed`` enters it once, so each move commits on its own. Inside, ``uow`` is the
``UnitOfWork`` the stores write in (its ``now``, ``new_id()``, ``record()``).

``clock`` and ``make_id`` work outside a transaction too: a move's time is read before its
transaction begins, and a receipt Provenance's id while the export is normalized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from payerbridge.compliance.clocks import Clocks
from payerbridge.consent.ports import ConsentStore
from payerbridge.exchange.ports import PartnerDirectory, ReceivedStore, ResourceWriter
from payerbridge.onboarding.ports import BulkPartner, OnboardingStore
from payerbridge.routing.model import Organization
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["OnboardingUnit"]


@dataclass
class OnboardingUnit(RoomUnit):
    transactions: Transactions
    onboardings: OnboardingStore  # the runs, their chunks and members
    partners: PartnerDirectory
    bulk: BulkPartner  # the old payer's $bulk-member-match and exports
    consents: ConsentStore  # the members' opt-ins
    writer: ResourceWriter  # where the imported resources are kept
    received: ReceivedStore  # the plan's own Patients and the other sources' (ADR 0054)
    us: Organization
    clock: Callable[[], datetime]  # the time now (``now`` is the transaction's start)
    make_id: Callable[[], str]  # a fresh id (``new_id()`` is the transaction's)
    consent_zone: ZoneInfo  # where date-only opt-in periods are read
    chunk_members: int  # members per $bulk-member-match request
    clocks: Clocks | None = None  # the members' and chunks' obligation rows (onboarding.clocks)
