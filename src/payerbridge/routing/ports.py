"""The routing room's ports: the partners we call (``store.partners``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from payerbridge.routing.model import Capabilities, Operations, Partner
from payerbridge.transactions import UnitOfWork
from payerbridge.types import PartnerId

__all__ = ["OperationsReplaced", "PartnerDiscovery", "PartnerRegistry"]


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
