"""The routing room's ports: the partners we call (``store.partners``) and what directory
imports propose to change in them (``store.partner_proposals``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from payerbridge.routing.directory_bundle import DirectoryOrganization
from payerbridge.routing.model import Capabilities, Operations, Partner
from payerbridge.transactions import UnitOfWork
from payerbridge.types import PartnerId

__all__ = [
    "DirectoryOrganization",
    "OperationsReplaced",
    "PartnerDiscovery",
    "PartnerProposal",
    "PartnerProposals",
    "PartnerRegistry",
    "ProposalDecision",
    "ProposalStatus",
]


class PartnerRegistry(Protocol):
    """The partners we call. Writes go through the caller's unit of work, stamped with
    its ``now``; the use case records their audit events."""

    def register(self, unit: UnitOfWork, partner: Partner) -> Partner | None:
        """Create or update; the partner as it stood before (None: it is new)."""
        ...

    def get(self, partner_id: PartnerId) -> Partner | None: ...

    def list(self) -> list[Partner]: ...

    def capabilities(self, partner_id: PartnerId) -> Capabilities | None:
        """The last reading of the partner's capabilities; None if never read."""
        ...

    def record_capabilities(
        self, unit: UnitOfWork, partner_id: PartnerId, capabilities: Capabilities
    ) -> None:
        """Keep a new reading."""
        ...

    def set_operations(
        self, unit: UnitOfWork, partner_id: PartnerId, operations: Operations
    ) -> OperationsReplaced | None:
        """Replace how the partner is operated; None when no such partner."""
        ...


@dataclass(frozen=True)
class OperationsReplaced:
    """What ``set_operations`` replaced: the stored document (None: never set, active)."""

    before: dict[str, Any] | None


class PartnerDiscovery(Protocol):
    def check_endpoints(self, partner: Partner) -> None:
        """UnprocessableRequest naming each URL of the partner (``base_url``,
        ``token_url``) that resolves to an address we do not call, or is plain http
        where https is required."""
        ...

    def wellknown(self, location: str) -> bytes:
        """The HRex davinci-configuration document at ``location``, read within its cap,
        redirects followed on its origin only; UnprocessableRequest when it cannot be."""
        ...

    def read(self, partner: Partner) -> dict[str, Any]:
        """What the partner's discovery documents say (CapabilityStatement, SMART
        configuration or verified UDAP metadata: ``token_endpoint`` and, for UDAP,
        ``registration_endpoint``; ``capabilities``, the reading as JSON; ``publisher``,
        the name its CapabilityStatement gives, when it gives one);
        UnprocessableRequest naming the one that could not be read or trusted."""
        ...

    def register(self, partner: Partner, registration_endpoint: str) -> str:
        """Register with a UDAP partner (our software statement); our client id there.
        UnprocessableRequest with the partner's reason when it refuses."""
        ...


class ProposalStatus(StrEnum):
    PENDING = "pending"  # awaiting an operator
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # a later import said something else of the organization


@dataclass(frozen=True)
class PartnerProposal:
    """A change a directory import holds for an operator: the organization as the
    directory describes it, why it is held (a new partner, another NPI, UDAP or not), and
    the partner as it stood when proposed (``based_on``: its fingerprint; None: none was
    registered), which an approval must still find."""

    id: str
    directory: str
    organization: DirectoryOrganization
    reasons: tuple[str, ...]
    based_on: str | None
    created_at: datetime
    created_by: str
    status: ProposalStatus = ProposalStatus.PENDING
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None

    @property
    def partner_id(self) -> str:
        return self.organization.partner_id

    def to_json(self) -> dict[str, Any]:
        decided = self.decided_at.isoformat() if self.decided_at else None
        return {
            "id": self.id,
            "partner_id": self.partner_id,
            "directory": self.directory,
            "status": self.status.value,
            "reasons": list(self.reasons),
            "organization": self.organization.to_json(),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "decided_at": decided,
            "decided_by": self.decided_by,
            "note": self.note,
        }


@dataclass(frozen=True)
class ProposalDecision:
    status: ProposalStatus  # approved, rejected or superseded
    by: str
    note: str | None = None


class PartnerProposals(Protocol):
    """Proposals of directory imports. Writes go through the caller's unit of work."""

    def add(self, unit: UnitOfWork, proposal: PartnerProposal) -> None: ...

    def get(self, proposal_id: str) -> PartnerProposal | None: ...

    def list(self, status: ProposalStatus | None = None) -> list[PartnerProposal]:
        """Newest first; of one status when given."""
        ...

    def latest(self, partner_id: str, directory: str) -> PartnerProposal | None:
        """The newest proposal the directory made for the partner, whatever its status."""
        ...

    def decide(self, unit: UnitOfWork, proposal_id: str, decision: ProposalDecision) -> bool:
        """Settle a pending proposal, stamped with the unit's ``now``; False when it was
        no longer pending."""
        ...
