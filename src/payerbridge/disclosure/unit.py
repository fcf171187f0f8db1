"""The disclosure room's unit of work (ADR 0051): what the old payer's answers to a
partner take: ``$member-match`` (the index, the consents it records, the clocks it
starts, the refused calls it counts), ``$everything``, reads and searches (the members'
records, the live sources, the consents, the paged decisions), and the answers kept for
a retry under an Idempotency-Key. ``with uow:`` is one transaction; the stores write in
``uow`` itself (a ``UnitOfWork`` while one is in progress) and read the last commit
outside."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.audit.ports import AuditLog
from payerbridge.audit.refusals import RefusalCounts
from payerbridge.compliance.clocks import Clocks
from payerbridge.consent.ports import ConsentStore
from payerbridge.disclosure.paging import PagingRules
from payerbridge.disclosure.ports import DisclosureSnapshots, LiveRecords, MemberStore
from payerbridge.idempotency.ports import IdempotencyStore
from payerbridge.identity.ports import IdentityIndex
from payerbridge.routing.model import Organization
from payerbridge.transactions import RoomUnit, Transactions, UnitOfWork

__all__ = ["DisclosureUnit"]


@dataclass
class DisclosureUnit(RoomUnit):
    transactions: Transactions
    members: MemberStore  # the plan's members and their records
    live: LiveRecords  # the live sources, asked at a first page
    consents: ConsentStore
    audit: AuditLog  # consent decisions and reads, each audited in a unit of its own
    snapshots: DisclosureSnapshots  # paged $everything and search decisions
    rules: PagingRules  # pages, snapshots, what may leave (segmentation, data scope)
    us: Organization  # who we are, on every Bundle
    index: IdentityIndex  # $member-match's candidates
    clocks: Clocks  # $member-match's one-business-day answer rows
    refusals: RefusalCounts[UnitOfWork]  # refused calls counted (ADR 0045)
    idempotency: IdempotencyStore  # answers kept for a retry under the same key
