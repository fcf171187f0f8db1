"""The backends room's unit of work (ADR 0051): what the plan's sources take: the
replicated sources' files mapped and kept, the live sources (a roster synchronised in
``with uow:``), and what failed the profiles, held for operators (ADR 0030)."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.backends.live import LiveSources
from payerbridge.backends.quarantine import Quarantine
from payerbridge.backends.service import SourceIngestion
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["SourcesUnit"]


@dataclass
class SourcesUnit(RoomUnit):
    transactions: Transactions
    sources: SourceIngestion  # the sources of the deployment, and their files kept
    live: LiveSources  # the sources asked at request time
    quarantine: Quarantine  # resources that failed their profiles, held
