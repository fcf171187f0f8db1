"""The routing room's ports: the partners we call (``store.partners``)."""

from __future__ import annotations

from typing import Protocol

from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId

__all__ = ["PartnerRegistry"]


class PartnerRegistry(Protocol):
    def register(self, partner: Partner, *, actor: str, request_id: str | None = None) -> bool:
        """Create or update, audited; True when the partner is new."""
        ...

    def get(self, partner_id: PartnerId) -> Partner | None: ...

    def list(self) -> list[Partner]: ...
