"""The identity room's unit of work (ADR 0051): what reviewing, merging and reading the
identity graph take. ``with uow:`` is one transaction; the stores write in ``uow``
itself (a ``UnitOfWork`` while one is in progress) and read the last commit outside."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.audit.ports import AuditLog
from payerbridge.compliance.clocks import ClockLedger
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.identity.ports import IdentityStore, MemberDirectory
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["IdentityUnit"]


@dataclass
class IdentityUnit(RoomUnit):
    transactions: Transactions
    identity: IdentityStore  # the index, the graph, the review queue, the decisions
    members: MemberDirectory  # the plan's own Patients (a merge names two of them)
    obligations: ObligationSet  # the rule's clocks, for a case's due date
    clocks: ClockLedger | None  # the obligation rows a decided case settles (None: none)
    audit: AuditLog  # a read of a case or a decision, audited on its own
