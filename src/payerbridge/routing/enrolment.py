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

from payerbridge.errors import Issue, NotFound, UnprocessableRequest
from payerbridge.routing.capabilities import Capabilities, changes
from payerbridge.routing.model import Partner, PartnerAuth, repointed, validate_partner
from payerbridge.routing.operations import parse_operations
from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry
from payerbridge.types import PartnerId

__all__ = [
    "Enrolled",
    "Refreshed",
    "enrol_partner",
    "refresh_partner",
    "registered",
    "set_operations",
]


@dataclass(frozen=True)
class Enrolled:
    partner: Partner  # as stored: for UDAP, with the client id and token endpoint we got
    created: bool
    capabilities: Capabilities | None = None  # what its CapabilityStatement said, if read
    unread: str | None = None  # why it could not be read (a new partner is kept anyway)


@dataclass(frozen=True)
class Refreshed:
    capabilities: Capabilities
    changes: list[str]  # what this reading says differently from the last one


def enrol_partner(
    partner: Partner,
    *,
    registry: PartnerRegistry,
    discovery: PartnerDiscovery,
    actor: str,
    request_id: str | None,
) -> Enrolled:
    """Validate, check the partner's discovery documents where that is due, register with
    it for UDAP, and store (audited with what changed and what discovery said). A URL
    that resolves to an address we do not call is refused first, for a new partner too."""
    validate_partner(partner)
    discovery.check_endpoints(partner)  # only where we call: before anything is sent
    before = registry.get(partner.id)
    discovered: dict[str, Any] | None = None
    if partner.auth is PartnerAuth.UDAP:
        partner, discovered = _udap(partner, before, discovery)
    elif before is not None and repointed(before, partner):
        discovered = discovery.read(partner)
    unread = None
    if discovered is None and before is None:
        # A new partner is read for the directory, but kept even when it does not answer
        # yet (its endpoint may open later): ``partners refresh`` reads it again.
        try:
            discovered = discovery.read(partner)
        except UnprocessableRequest as exc:
            unread = exc.text
    created = registry.register(partner, actor=actor, request_id=request_id, discovered=discovered)
    capabilities = None
    if discovered is not None and "capabilities" in discovered:
        capabilities = _keep(registry, partner, discovered, actor, request_id).capabilities
    return Enrolled(partner, created, capabilities, unread)


def refresh_partner(
    partner_id: PartnerId,
    *,
    registry: PartnerRegistry,
    discovery: PartnerDiscovery,
    actor: str,
    request_id: str | None,
) -> Refreshed:
    """Read the partner's discovery documents again and keep what they say, with what
    changed (a dropped operation, another guide version, a new token endpoint), audited.
    NotFound for an unknown partner; UnprocessableRequest naming the document that
    could not be read (the last reading stays)."""
    partner = registered(registry, partner_id)
    return _keep(registry, partner, discovery.read(partner), actor, request_id)


def set_operations(
    partner_id: PartnerId,
    document: Any,
    *,
    registry: PartnerRegistry,
    actor: str,
    request_id: str | None,
) -> Partner:
    """Replace how an operator runs the partner (suspended or not, its maintenance
    windows), audited; the partner as it now stands."""
    operations = parse_operations(document)
    if not registry.set_operations(partner_id, operations, actor=actor, request_id=request_id):
        raise NotFound(f"no partner is registered with id '{partner_id[:64]}'")
    return registered(registry, partner_id)  # as stored, with the operations just set


def registered(registry: PartnerRegistry, partner_id: PartnerId) -> Partner:
    """The partner, or NotFound naming the id."""
    partner = registry.get(partner_id)
    if partner is None:
        raise NotFound(f"no partner is registered with id '{partner_id[:64]}'")
    return partner


def _keep(
    registry: PartnerRegistry,
    partner: Partner,
    discovered: dict[str, Any],
    actor: str,
    request_id: str | None,
) -> Refreshed:
    reading = Capabilities.from_json(discovered["capabilities"])
    found = changes(registry.capabilities(partner.id), reading)
    registry.record_capabilities(
        partner.id, reading, changes=found, actor=actor, request_id=request_id
    )
    return Refreshed(reading, found)


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
