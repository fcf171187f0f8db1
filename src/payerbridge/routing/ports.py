"""The routing room's ports: the partners we call (``store.partners``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import Operations
from payerbridge.types import PartnerId

__all__ = ["PartnerDiscovery", "PartnerRegistry"]


class PartnerRegistry(Protocol):
    def register(
        self,
        partner: Partner,
        *,
        actor: str,
        request_id: str | None = None,
        discovered: dict[str, Any] | None = None,
    ) -> bool:
        """Create or update, audited (with what changed and what its discovery documents
        said when they were read); True when the partner is new."""
        ...

    def get(self, partner_id: PartnerId) -> Partner | None: ...

    def list(self) -> list[Partner]: ...

    def capabilities(self, partner_id: PartnerId) -> Capabilities | None:
        """The last reading of the partner's capabilities; None if never read."""
        ...

    def record_capabilities(
        self,
        partner_id: PartnerId,
        capabilities: Capabilities,
        *,
        changes: Sequence[str],
        actor: str,
        request_id: str | None = None,
    ) -> None:
        """Keep a new reading, audited with what it changed."""
        ...

    def set_operations(
        self,
        partner_id: PartnerId,
        operations: Operations,
        *,
        actor: str,
        request_id: str | None = None,
    ) -> bool:
        """Replace how the partner is operated (audited); False when no such partner."""
        ...


class PartnerDiscovery(Protocol):
    def check_endpoints(self, partner: Partner) -> None:
        """UnprocessableRequest naming each URL of the partner (``base_url``,
        ``token_url``) that resolves to an address we do not call, or is plain http
        where https is required."""
        ...

    def read(self, partner: Partner) -> dict[str, Any]:
        """What the partner's discovery documents say (CapabilityStatement, SMART
        configuration or verified UDAP metadata: ``token_endpoint`` and, for UDAP,
        ``registration_endpoint``; ``capabilities``, the reading as JSON);
        UnprocessableRequest naming the one that could not be read or trusted."""
        ...

    def register(self, partner: Partner, registration_endpoint: str) -> str:
        """Register with a UDAP partner (our software statement); our client id there.
        UnprocessableRequest with the partner's reason when it refuses."""
        ...
