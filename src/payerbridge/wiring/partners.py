"""How we reach partners: who we are to UDAP partners, and the reader of their discovery
documents."""

from __future__ import annotations

from dataclasses import dataclass
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

__all__ = [
    "Reach",
    "key_set_source",
    "our_udap_client",
    "partner_client",
    "partner_discovery",
]


@dataclass(frozen=True)
class Reach:
    """How we reach partners, as configured: the settings, the addresses we may call
    (``egress``), the caps on the size of their answers, who we are to UDAP partners (none
    without our community certificate), and the transport (a test's; None: the network)."""

    settings: Settings
    egress: AddressPolicy
    caps: ResponseCaps
    udap: OurUdapClient | None
    transport: httpx.BaseTransport | None

    def calls(self) -> Outbound:
        """How each call goes out: its timeout, the addresses it may reach, the transport."""
        return Outbound(
            timeout_seconds=self.settings.partner_timeout_seconds,
            policy=self.egress,
            transport=self.transport,
        )


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


def partner_discovery(reach: Reach, trust: TrustAnchors) -> HttpxPartnerDiscovery:
    """Reads a partner's discovery documents (its CapabilityStatement, SMART or UDAP),
    their UDAP certificates checked against ``trust``."""
    settings = reach.settings
    return HttpxPartnerDiscovery(
        outbound=reach.calls(),
        document_limit=reach.caps.document,
        udap=reach.udap,
        trust=trust,
        clock_skew=timedelta(seconds=settings.clock_skew_seconds),
    )


def partner_client(reach: Reach, key: ECKey) -> HttpxPartnerClient:
    """Our outbound calls to partners: member match, token requests, Bulk Data; ``key``
    signs our token requests."""
    return HttpxPartnerClient(
        outbound=reach.calls(),
        caps=reach.caps,
        user_agent=f"payerbridge/{__version__}",
        key=key,
        udap=reach.udap,
    )


def key_set_source(reach: Reach) -> HttpxKeySetSource:
    """Reads the JWK Sets our registered clients publish (over the network, always)."""
    return HttpxKeySetSource(
        outbound=Outbound(
            timeout_seconds=reach.settings.partner_timeout_seconds, policy=reach.egress
        ),
        limit=reach.caps.document,
    )
