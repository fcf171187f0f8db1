"""The consent room's port: the consents kept (``store.consents``, ``tests/fakes.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import ConsentRole, StoredConsent
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, MemberId

__all__ = ["ConsentReader", "ConsentStore"]


class ConsentReader(Protocol):
    """What a disclosure decision reads: a member's consents."""

    def for_member(self, member_id: MemberId, role: ConsentRole) -> list[StoredConsent]: ...


class ConsentStore(ConsentReader, Protocol):
    """Consents kept. Writes run in the caller's unit of work."""

    def add(self, unit: UnitOfWork, consent: StoredConsent, *, event: AuditEvent) -> StoredConsent:
        """Keep ``consent`` and record ``event``; an unrevoked consent of the same member,
        role, client and resource hash is returned instead (and nothing is recorded)."""
        ...

    def get(self, consent_id: str) -> StoredConsent | None: ...

    def for_members(
        self, member_ids: Sequence[MemberId], role: ConsentRole, *, resources: bool = True
    ) -> dict[MemberId, list[StoredConsent]]:
        """``for_member`` of many members in one read (a bulk job's chunk); without
        ``resources``, each consent's ``resource`` is left unread (``{}``): a decision
        reads the records alone, and opening every member's Consent cost more than it."""
        ...

    def members_disclosed_to(self, client_id: ClientId) -> list[MemberId]:
        """The members (ids, sorted) with an unrevoked consent to disclose to this client:
        whom a patient-level export of this client considers."""
        ...

    def revoke(self, unit: UnitOfWork, consent_id: str, *, at: datetime, by: str) -> StoredConsent:
        """Revoke from ``at`` under a lock on the consent (the earliest instant wins);
        NotFound if there is no such consent."""
        ...
