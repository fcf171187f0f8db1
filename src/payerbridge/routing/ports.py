"""The routing room's ports: the partners we call (``store.partners``)."""

from __future__ import annotations

from typing import Any, Protocol

from payerbridge.routing.model import Partner
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


class PartnerDiscovery(Protocol):
    def read(self, partner: Partner) -> dict[str, Any]:
        """What the partner's discovery documents say (CapabilityStatement, SMART
        configuration); UnprocessableRequest naming the one that could not be read."""
        ...
