"""Registering a partner: the one way an operator (over HTTP or the CLI) adds a partner or
changes where we call it and who we are there.

Where member data and our assertions go is changing when a partner is re-pointed, so its
new endpoint must first answer as a FHIR server and, when we authenticate, as the
authorization server we expect. A UDAP partner is checked and registered with before it
is stored: its signed metadata must chain to our trust anchors, and its registration
endpoint gives us our client id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from payerbridge.errors import Issue, UnprocessableRequest
from payerbridge.routing.model import Partner, PartnerAuth, repointed, validate_partner
from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry

__all__ = ["Enrolled", "enrol_partner"]


@dataclass(frozen=True)
class Enrolled:
    partner: Partner  # as stored: for UDAP, with the client id and token endpoint we got
    created: bool


def enrol_partner(
    partner: Partner,
    *,
    registry: PartnerRegistry,
    discovery: PartnerDiscovery,
    actor: str,
    request_id: str | None,
) -> Enrolled:
    """Validate, check the partner's discovery documents where that is due, register with
    it for UDAP, and store (audited with what changed and what discovery said)."""
    validate_partner(partner)
    before = registry.get(partner.id)
    discovered: dict[str, Any] | None = None
    if partner.auth is PartnerAuth.UDAP:
        partner, discovered = _udap(partner, before, discovery)
    elif before is not None and repointed(before, partner):
        discovered = discovery.read(partner)
    created = registry.register(partner, actor=actor, request_id=request_id, discovered=discovered)
    return Enrolled(partner, created)


def _udap(
    partner: Partner, before: Partner | None, discovery: PartnerDiscovery
) -> tuple[Partner, dict[str, Any] | None]:
    """The UDAP partner to store: unchanged endpoints keep the registration we have; new
    ones are read (signed metadata) and, unless the operator gave our client id, we
    register there."""
    if before is not None and before.auth is PartnerAuth.UDAP and before.client_id is not None:
        kept = replace(
            partner,
            client_id=partner.client_id or before.client_id,
            token_url=partner.token_url or before.token_url,
        )
        if not repointed(before, kept):
            return kept, None
    discovered = discovery.read(partner)
    token_url = discovered["token_endpoint"]
    if partner.token_url not in (None, token_url):
        text = (
            f"token_url differs from the token endpoint the partner's signed UDAP metadata "
            f"names ({token_url}); leave it out"
        )
        raise UnprocessableRequest(
            f"partner '{partner.id}' was not registered: {text}",
            issues=[Issue(text, "token_url", "conflict")],
        )
    client_id = partner.client_id
    if client_id is None:
        client_id = discovery.register(partner, discovered["registration_endpoint"])
        discovered = {**discovered, "registered": True}
    return replace(partner, client_id=client_id, token_url=token_url), discovered
