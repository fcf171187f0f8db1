"""The bulk room's unit of work (ADR 0051): ``$bulk-member-match`` jobs, their Groups and
the exports, through the room's ports (``BulkPorts``, whose use cases still open their
own transactions on ``transactions``)."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.bulk.member_match import BulkPorts
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["BulkUnit"]


@dataclass
class BulkUnit(RoomUnit):
    transactions: Transactions
    ports: BulkPorts  # the jobs, the members, the rules, what a job's use cases take
