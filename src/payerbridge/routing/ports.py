"""The routing room's ports: the partners we call and the clients that call us
(``store.partners``, ``store.clients``)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from payerbridge.routing.model import ApiClient, Partner
from payerbridge.types import PartnerId

__all__ = ["ClientRegistry", "PartnerRegistry"]


class PartnerRegistry(Protocol):
    def register(self, partner: Partner, *, actor: str, request_id: str | None = None) -> bool:
        """Create or update, audited; True when the partner is new. An update without a
        credential keeps the one on file."""
        ...

    def get(self, partner_id: PartnerId) -> Partner | None: ...

    def list(self) -> list[Partner]: ...


class ClientRegistry(Protocol):
    def register(self, client: ApiClient, *, at: datetime, actor: str) -> str:
        """Store the client, audited; return its new bearer credential (shown once)."""
        ...

    def by_token(self, token: str) -> ApiClient | None: ...
