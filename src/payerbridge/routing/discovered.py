"""Registering a partner from its HRex ``.well-known/davinci-configuration`` alone
(ADR 0061): the location an operator was given, or the one a member's old Coverage
carries. The document gives the payer endpoints and, when its identifier is an NPI, the
NPI; the rest is the operator's to give or is found: the id from the host, the name from
the partner's CapabilityStatement. The partner then goes through ``enrol_partner`` as
any other registration does (its CapabilityStatement, SMART or UDAP read, its addresses
checked, audited, with the document named as where its endpoints came from).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from payerbridge.errors import InvalidInput, Issue, PayerBridgeError, UnprocessableRequest
from payerbridge.routing.enrolment import (
    Enrolled,
    EnrolPartner,
    RefreshPartner,
    enrol_partner,
    refresh_partner,
)
from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, Partner, PartnerAuth, validate_partner
from payerbridge.routing.ports import PartnerDiscovery
from payerbridge.routing.unit import PartnersUnit
from payerbridge.routing.wellknown import (
    WellknownReading,
    coverage_wellknown,
    endpoints_replaced,
    is_refresh_due,
    location_issues,
    read_wellknown,
    wellknown_locations,
)
from payerbridge.types import PartnerId

__all__ = [
    "DiscoverPartner",
    "Discovered",
    "PartnerAccess",
    "RefreshDiscovered",
    "RefreshRun",
    "discover_partner",
    "refresh_discovered",
]


@dataclass(frozen=True)
class PartnerAccess:
    """How we get a token from the partner, as for any registration."""

    auth: PartnerAuth = PartnerAuth.NONE
    client_id: str | None = None
    token_url: str | None = None
    scope: str = DEFAULT_PARTNER_SCOPE


@dataclass(frozen=True)
class DiscoverPartner:
    """A partner to register from the davinci-configuration at ``wellknown_url``, or at
    the location ``coverage`` (a member's Coverage from that payer) carries; ``id``,
    ``name`` and ``npi`` when the operator gives them."""

    actor: str
    wellknown_url: str | None = None
    coverage: Any = None
    id: str | None = None
    name: str | None = None
    npi: str | None = None
    access: PartnerAccess = field(default_factory=PartnerAccess)
    request_id: str | None = None


@dataclass(frozen=True)
class Discovered:
    enrolled: Enrolled
    reading: WellknownReading


def discover_partner(command: DiscoverPartner, uow: PartnersUnit) -> Discovered:
    """Read the document, build the partner and enrol it; UnprocessableRequest naming
    what is wrong (the document, an NPI it does not give or contradicts), with nothing
    stored. A partner registered already keeps what the command does not give (its
    name, how we call it, its operator's and directory's endpoints)."""
    location = _location(command)
    reading = read_wellknown(uow.discovery.wellknown(location), location)
    partner_id = PartnerId(command.id or _id_from(location))
    before = uow.partners.get(partner_id)
    access = command.access
    if before is not None and access == PartnerAccess():
        access = PartnerAccess(before.auth, before.client_id, before.token_url, before.scope)
    partner = Partner(
        partner_id,
        command.name or (before.name if before else _host(location)),
        _npi(reading, command.npi, before.npi if before else None),
        "",
        client_id=access.client_id,
        token_url=access.token_url,
        scope=access.scope,
        auth=access.auth,
        endpoints=reading.endpoints,
    )
    if before is not None:
        endpoints, _ = endpoints_replaced(before.endpoints, reading)
        partner = replace(partner, endpoints=endpoints, operations=before.operations)
    elif command.name is None:  # asked of its CapabilityStatement once it may be called
        validate_partner(partner)
        uow.discovery.check_endpoints(partner)
        partner = replace(partner, name=_published_name(uow.discovery, partner))
    enrol = EnrolPartner(partner, command.actor, command.request_id, wellknown=location)
    return Discovered(enrol_partner(enrol, uow), reading)


@dataclass(frozen=True)
class RefreshDiscovered:
    """The scheduled re-reading: partners whose last reading is ``interval`` old at
    ``now``, at most ``limit`` of them (the rest at the next run)."""

    now: datetime
    interval: timedelta
    limit: int = 8
    actor: str = "payerbridge"


@dataclass(frozen=True)
class RefreshRun:
    changed: dict[PartnerId, tuple[str, ...]]  # each partner read, with what it changed
    failed: dict[PartnerId, str]  # why a partner could not be read (nothing changed)


def refresh_discovered(command: RefreshDiscovered, uow: PartnersUnit) -> RefreshRun:
    """Refresh (``refresh_partner``) each partner whose endpoints came from a
    davinci-configuration and whose last reading is due; one that fails keeps what it
    had and is named with why."""
    changed: dict[PartnerId, tuple[str, ...]] = {}
    failed: dict[PartnerId, str] = {}
    for partner in uow.partners.list():
        if len(changed) + len(failed) >= command.limit:
            break
        last = uow.partners.capabilities(partner.id)
        due = is_refresh_due(last.read_at if last else None, command.now, command.interval)
        if not due or not wellknown_locations(partner.endpoints):
            continue
        try:
            refreshed = refresh_partner(RefreshPartner(partner.id, command.actor), uow)
        except PayerBridgeError as exc:
            failed[partner.id] = exc.text
            continue
        changed[partner.id] = refreshed.endpoint_changes
    return RefreshRun(changed, failed)


def _location(command: DiscoverPartner) -> str:
    if (command.wellknown_url is None) == (command.coverage is None):
        text = "give wellknown_url or a coverage carrying one, not both"
        raise InvalidInput(text, issues=[Issue(text, "wellknown_url", "required")])
    if command.wellknown_url is None:
        return coverage_wellknown(command.coverage)
    issues = location_issues(command.wellknown_url)
    if issues:
        raise InvalidInput("wellknown_url cannot be read", issues=issues)
    return command.wellknown_url


def _npi(reading: WellknownReading, given: str | None, registered: str | None) -> str:
    """The document's NPI, else the operator's, else the one the partner is registered
    with. The operator's must agree with the document's; so must the registered one
    unless the operator confirms the document's: a document alone does not change whose
    partner it is."""
    found = reading.npi
    if found is not None and given is not None and given != found:
        text = (
            "npi differs from the NPI the partner's davinci-configuration names; leave it "
            "out, or ask the partner which is right"
        )
        raise UnprocessableRequest(text, issues=[Issue(text, "npi", "conflict")])
    if found is not None and registered not in (None, found) and given is None:
        text = (
            "the partner's davinci-configuration names another NPI than it is registered "
            "with; give npi (the document's) to confirm the change"
        )
        raise UnprocessableRequest(text, issues=[Issue(text, "npi", "conflict")])
    chosen = found or given or registered
    if chosen is None:
        text = "the partner's davinci-configuration names no valid NPI (its identifier is "
        text += "another kind): give npi"
        raise UnprocessableRequest(text, issues=[Issue(text, "npi", "required")])
    return chosen


def _published_name(discovery: PartnerDiscovery, partner: Partner) -> str:
    """The name the partner's CapabilityStatement gives (publisher, else name); the host
    when it gives none or cannot be read (enrolment then says why)."""
    try:
        named = discovery.read(partner).get("publisher")
    except UnprocessableRequest:
        return partner.name
    return named if isinstance(named, str) and named.strip() else partner.name


def _host(location: str) -> str:
    return urlsplit(location).netloc.lower()


def _id_from(location: str) -> str:
    """A partner id from the document's host (and port): lower case, each run of other
    characters a '-', at most 64."""
    return re.sub(r"[^a-z0-9]+", "-", _host(location)).strip("-")[:64].rstrip("-") or "partner"
