"""Registering a partner: the one way an operator (over HTTP or the CLI) adds a partner or
changes where we call it and who we are there.

Where member data and our assertions go is changing when a partner is re-pointed, so its
new endpoint must first answer as a FHIR server and, when we authenticate, as the
authorization server we expect. A UDAP partner is checked and registered with before it
is stored: its signed metadata must chain to our trust anchors, and its registration
endpoint gives us our client id.

The use cases take what was asked and the room's ``PartnersUnit`` (ADR 0051),
``store_partner`` too (for tools and tests that start their partners themselves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import InvalidInput, Issue, NotFound, UnprocessableRequest
from payerbridge.routing.capabilities import Capabilities, changes
from payerbridge.routing.model import (
    Operations,
    Partner,
    PartnerAuth,
    repointed,
    validate_partner,
)
from payerbridge.routing.operations import parse_operations
from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry
from payerbridge.routing.unit import PartnersUnit
from payerbridge.routing.wellknown import endpoints_replaced, read_wellknown, wellknown_locations
from payerbridge.transactions import UnitOfWork
from payerbridge.types import PartnerId

__all__ = [
    "EnrolPartner",
    "Enrolled",
    "RefreshPartner",
    "Refreshed",
    "SetOperations",
    "StorePartner",
    "enrol_partner",
    "refresh_partner",
    "registered",
    "set_operations",
    "store_partner",
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
    # What its davinci-configuration changed in its endpoints (added, removed, versions).
    endpoint_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Asked:
    """Who asked for a change to the directory, and in which request: what its audit
    events name."""

    actor: str
    request_id: str | None


@dataclass(frozen=True)
class EnrolPartner:
    """A partner to add, or to change as given, asked by ``actor`` (in ``request_id``)."""

    partner: Partner
    actor: str
    request_id: str | None = None
    wellknown: str | None = None  # the davinci-configuration its endpoints were read from
    # What else the registration's transaction holds (a directory's event, a proposal
    # settled): committed with the partner or not at all.
    within: Callable[[], None] | None = None


@dataclass(frozen=True)
class RefreshPartner:
    partner_id: PartnerId
    actor: str
    request_id: str | None = None


@dataclass(frozen=True)
class StorePartner:
    """A partner to store as given, by ``actor`` (in ``request_id``), unchecked."""

    partner: Partner
    actor: str
    request_id: str | None = None


@dataclass(frozen=True)
class SetOperations:
    """How the partner is to be run: the operations document as given (checked by the
    use case, which names each problem)."""

    partner_id: PartnerId
    document: Any
    actor: str
    request_id: str | None = None


def enrol_partner(command: EnrolPartner, uow: PartnersUnit) -> Enrolled:
    """Validate, check the partner's discovery documents where that is due, register with
    it for UDAP, and store (audited with what changed and what discovery said). A URL
    that resolves to an address we do not call is refused first, for a new partner too."""
    partner, registry, discovery = command.partner, uow.partners, uow.discovery
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
    if command.wellknown is not None:  # said in its audit event: where the endpoints came from
        discovered = {**(discovered or {}), "endpoints_from": command.wellknown}
    capabilities = None
    # Read before the unit takes its connection (errors.SecondConnection, refused by store.engines).
    previous = registry.capabilities(partner.id)
    with uow:  # the partner and its reading, audited together
        stored = registry.register(uow, partner)
        by = _Asked(command.actor, command.request_id)
        uow.record(_registered(uow.now, partner, stored, discovered, by))
        if discovered is not None and "capabilities" in discovered:
            kept = _keep(uow, registry, partner, _read(discovered, previous), by)
            capabilities = kept.capabilities
        if command.within is not None:
            command.within()
    return Enrolled(partner, stored is None, capabilities, unread)


def store_partner(command: StorePartner, uow: PartnersUnit) -> bool:
    """Store the partner as given, audited, without reading its discovery documents or
    registering with it (a sandbox or a benchmark that starts its partners itself); True
    when it is new."""
    partner = command.partner
    validate_partner(partner)
    with uow:
        before = uow.partners.register(uow, partner)
        by = _Asked(command.actor, command.request_id)
        uow.record(_registered(uow.now, partner, before, None, by))
    return before is None


def refresh_partner(command: RefreshPartner, uow: PartnersUnit) -> Refreshed:
    """Read the partner's discovery documents again and keep what they say, with what
    changed (a dropped operation, another guide version, a new token endpoint), audited;
    first its davinci-configuration, where its endpoints came from one: those endpoints
    are replaced by what it now says (``partner.endpoints`` audited). NotFound for an
    unknown partner; UnprocessableRequest naming the document that could not be read
    (the last reading and the endpoints stay)."""
    registry = uow.partners
    before = registered(registry, command.partner_id)
    partner, endpoint_changes = _endpoints_read_again(before, uow.discovery)
    discovered = uow.discovery.read(partner)
    previous = registry.capabilities(partner.id)  # read before the unit takes its connection
    with uow:
        by = _Asked(command.actor, command.request_id)
        if partner != before:
            registry.register(uow, partner)
        for location, changes in endpoint_changes.items():
            uow.record(_endpoints_changed(uow.now, partner, location, changes, by))
        kept = _keep(uow, registry, partner, _read(discovered, previous), by)
    found = tuple(change for changes in endpoint_changes.values() for change in changes)
    return replace(kept, endpoint_changes=found)


def _endpoints_read_again(
    partner: Partner, discovery: PartnerDiscovery
) -> tuple[Partner, dict[str, list[str]]]:
    """The partner with the endpoints each davinci-configuration it was read from now
    names, checked as a registration is; what changed, by document."""
    changed: dict[str, list[str]] = {}
    endpoints = partner.endpoints
    for location in wellknown_locations(endpoints):
        reading = read_wellknown(discovery.wellknown(location), location)
        endpoints, changed[location] = endpoints_replaced(endpoints, reading)
    if not any(changed.values()):
        return partner, changed
    moved = replace(partner, base_url="", endpoints=endpoints)
    validate_partner(moved)
    discovery.check_endpoints(moved)
    return moved, changed


def _endpoints_changed(
    at: datetime, partner: Partner, location: str, changes: list[str], by: _Asked
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=by.actor,
        action="partner.endpoints",
        entity_type="Partner",
        entity_id=partner.id,
        outcome="changed" if changes else "unchanged",
        request_id=by.request_id,
        detail={
            "wellknown": location,
            "changes": changes,
            "endpoints": [e.to_json() for e in partner.endpoints],
        },
    )


def set_operations(command: SetOperations, uow: PartnersUnit) -> Partner:
    """Replace how an operator runs the partner (suspended or not, its maintenance
    windows), audited; the partner as it now stands."""
    partner_id, registry = command.partner_id, uow.partners
    operations = parse_operations(command.document)
    _windows_on_endpoints(registered(registry, partner_id), operations)
    with uow:
        replaced = registry.set_operations(uow, partner_id, operations)
        if replaced is None:
            raise NotFound(f"no partner is registered with id '{partner_id[:64]}'")
        uow.record(
            AuditEvent(
                at=uow.now,
                actor=command.actor,
                action="partner.operations",
                entity_type="Partner",
                entity_id=partner_id,
                outcome=operations.status.value,
                request_id=command.request_id,
                detail={"before": replaced.before, "after": operations.to_json()},
            )
        )
    return registered(registry, partner_id)  # as stored, with the operations just set


def _windows_on_endpoints(partner: Partner, operations: Operations) -> None:
    """InvalidInput naming each maintenance window held to an endpoint the partner does
    not have (a window nobody would ever be held by)."""
    bases = {endpoint.base for endpoint in partner.endpoints}
    issues = [
        Issue(
            f"the partner has no endpoint {window.endpoint}; its endpoints are "
            f"{', '.join(sorted(bases))}",
            f"maintenance[{n}].endpoint",
        )
        for n, window in enumerate(operations.maintenance)
        if window.endpoint is not None and window.endpoint not in bases
    ]
    if issues:
        raise InvalidInput("the partner's operations are not valid", issues=issues)


def registered(registry: PartnerRegistry, partner_id: PartnerId) -> Partner:
    """The partner, or NotFound naming the id."""
    partner = registry.get(partner_id)
    if partner is None:
        raise NotFound(f"no partner is registered with id '{partner_id[:64]}'")
    return partner


def _keep(
    unit: UnitOfWork, registry: PartnerRegistry, partner: Partner, read: Refreshed, by: _Asked
) -> Refreshed:
    """Keep a reading of the partner's capabilities, audited with what it changed."""
    reading, found = read.capabilities, read.changes
    registry.record_capabilities(unit, partner.id, reading)
    unit.record(
        AuditEvent(
            at=reading.read_at,
            actor=by.actor,
            action="partner.capabilities",
            entity_type="Partner",
            entity_id=partner.id,
            outcome="changed" if found else "unchanged",
            request_id=by.request_id,
            detail={"changes": list(found), "capabilities": reading.to_json()},
        )
    )
    return read


def _read(discovered: dict[str, Any], previous: Capabilities | None) -> Refreshed:
    """The reading in what the partner's discovery documents said, with what it says
    differently from ``previous``."""
    reading = Capabilities.from_json(discovered["capabilities"])
    return Refreshed(reading, changes(previous, reading))


def _registered(
    at: datetime,
    partner: Partner,
    before: Partner | None,
    discovered: dict[str, Any] | None,
    by: _Asked,
) -> AuditEvent:
    """The audit event of a partner stored: created, or updated with the fields that
    changed (a re-pointed base URL or token endpoint shows here) and what its discovery
    documents said."""
    fields = ("name", "npi", "base_url", "endpoints", "auth", "client_id", "token_url", "scope")
    changed = [f for f in fields if getattr(before, f) != getattr(partner, f)] if before else []
    return AuditEvent(
        at=at,
        actor=by.actor,
        action="partner.register",
        entity_type="Partner",
        entity_id=partner.id,
        outcome="updated" if before else "created",
        request_id=by.request_id,
        detail={
            "base_url": partner.base_url,
            "endpoints": [e.to_json() for e in partner.endpoints],
            "changed": changed,
            **({"discovered": discovered} if discovered else {}),
        },
    )


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
