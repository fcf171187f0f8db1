"""How we reach partners: who we are to UDAP partners, and the reader of their discovery
documents."""

from __future__ import annotations

from datetime import timedelta

import httpx
from joserfc.jwk import ECKey

from payerbridge import __version__
from payerbridge.config import Settings
from payerbridge.errors import InvalidInput, Issue
from payerbridge.net.addresses import AddressPolicy
from payerbridge.partners.answers import Outbound, ResponseCaps
from payerbridge.partners.auth import OurUdapClient
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.partners.discovery import HttpxPartnerDiscovery
from payerbridge.partners.key_sets import HttpxKeySetSource
from payerbridge.routing.model import Organization
from payerbridge.security.model import ServerIdentity, TrustAnchors

__all__ = ["key_set_source", "our_udap_client", "partner_client", "partner_discovery"]


def our_udap_client(settings: Settings, identity: ServerIdentity | None) -> OurUdapClient | None:
    """Who we are to UDAP partners, when our community certificate is configured."""
    if identity is None:
        return None
    try:
        uri = identity.client_uri(f"{settings.base_url}/fhir")
    except ValueError as exc:
        raise InvalidInput(
            "PAYERBRIDGE_UDAP_CERTIFICATE names no URI: a UDAP certificate must carry one "
            "(subject alternative name), normally this server's FHIR base URL",
            issues=[Issue(str(exc), "udap_certificate")],
        ) from exc
    return OurUdapClient(identity, uri, Organization(settings.org_name, settings.org_npi))


def partner_discovery(
    settings: Settings,
    egress: AddressPolicy,
    caps: ResponseCaps,
    udap: OurUdapClient | None,
    trust: TrustAnchors,
    transport: httpx.BaseTransport | None,
) -> HttpxPartnerDiscovery:
    """Reads a partner's discovery documents (its CapabilityStatement, SMART or UDAP)."""
    return HttpxPartnerDiscovery(
        outbound=Outbound(
            timeout_seconds=settings.partner_timeout_seconds, policy=egress, transport=transport
        ),
        document_limit=caps.document,
        udap=udap,
        trust=trust,
        clock_skew=timedelta(seconds=settings.clock_skew_seconds),
    )


def partner_client(
    settings: Settings,
    egress: AddressPolicy,
    caps: ResponseCaps,
    key: ECKey,
    udap: OurUdapClient | None,
    transport: httpx.BaseTransport | None,
) -> HttpxPartnerClient:
    """Our outbound calls to partners: member match, token requests, Bulk Data."""
    return HttpxPartnerClient(
        outbound=Outbound(
            timeout_seconds=settings.partner_timeout_seconds, policy=egress, transport=transport
        ),
        caps=caps,
        user_agent=f"payerbridge/{__version__}",
        key=key,
        udap=udap,
    )


def key_set_source(
    settings: Settings, egress: AddressPolicy, caps: ResponseCaps
) -> HttpxKeySetSource:
    """Reads the JWK Sets our registered clients publish."""
    return HttpxKeySetSource(
        outbound=Outbound(timeout_seconds=settings.partner_timeout_seconds, policy=egress),
        limit=caps.document,
    )
