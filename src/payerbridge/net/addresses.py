"""Which IP addresses an outbound call may connect to (pure: no resolution, no I/O).

One policy serves every outbound call that goes where someone else told us to go: a
partner's FHIR base and token endpoint, a client's ``jwks_url``, a webhook. An address is
allowed when it is globally reachable, or when it lies in a network the operator listed
(``PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS``: loopback in development, nothing in production).

``ipaddress.is_global`` alone is not enough (Python 3.11 calls multicast, NAT64 and
6to4 forms of loopback, ``fec0::/10`` and IPv4-compatible addresses global), so the
checks are explicit:

- multicast, unspecified, loopback, link-local, site-local, private, shared (RFC 6598),
  reserved and documentation ranges are refused, in IPv4 and IPv6;
- an IPv6 address that carries an IPv4 address is judged by the IPv4 address it
  carries: IPv4-mapped (``::ffff:0:0/96``), NAT64 (``64:ff9b::/96``, RFC 6052) and
  6to4 (``2002::/16``); IPv4-compatible (``::/96``), local-use NAT64
  (``64:ff9b:1::/48``) and Teredo (``2001::/32``) are refused outright.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LOOPBACK_NETWORKS",
    "AddressPolicy",
    "address_refusal",
    "egress_networks",
    "parse_networks",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def _parse(address: str | IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address
    return ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))


def _v4_refusal(address: ipaddress.IPv4Address) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.is_reserved or address == ipaddress.IPv4Address("255.255.255.255"):
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally reachable"
    return None


def _embedded(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the form that carries it."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


def _v6_refusal(address: ipaddress.IPv6Address) -> str | None:
    embedded = _embedded(address)
    if embedded is not None:
        form, v4 = embedded
        why = _v4_refusal(v4)
        return f"{form} form of {v4}, {why}" if why else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address in _COMPATIBLE:
        return "IPv4-compatible (deprecated)"
    if address in _NAT64_LOCAL:
        return "local-use NAT64"
    if address in _TEREDO:
        return "Teredo"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SITE_LOCAL:
        return "site-local (deprecated)"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def address_refusal(address: str | IPAddress) -> str | None:
    """Why an outbound call must not connect to ``address`` whatever the configuration
    (the kind of range it is in); None for a globally reachable address."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv4Address):
        return _v4_refusal(parsed)
    return _v6_refusal(parsed)


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR networks as configured; ValueError naming the one that is not a network."""
    parsed = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(network.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{network!r} is not an IP network (CIDR): {exc}") from None
    return tuple(parsed)


# What an egress exception may never open in production: this host, link-local
# (cloud metadata at 169.254.169.254), multicast, "this network".
_NEVER_IN_PROD = [
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "0.0.0.0/8")
    + ("::1/128", "::/128", "fe80::/10", "ff00::/8", "::ffff:0:0/96")
]


def egress_networks(listed: list[str] | None, *, is_prod: bool) -> list[str]:
    """The egress exceptions as the settings keep them (``egress_allowed_networks``):
    unset is loopback in development and the test suite, nothing in production; in
    production only private networks may be listed. ValueError naming the one that is
    not a network or not allowed."""
    networks = ([] if is_prod else list(LOOPBACK_NETWORKS)) if listed is None else listed
    for text in networks:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(f"egress_allowed_networks: {text!r} is not a network") from exc
        local = any(
            network.version == other.version and network.overlaps(other) for other in _NEVER_IN_PROD
        )
        if is_prod and local:
            raise ValueError(
                f"egress_allowed_networks: {text} is a loopback, link-local, multicast "
                "or unspecified network; in prod only private networks may be listed"
            )
    return networks


@dataclass(frozen=True)
class AddressPolicy:
    """Global addresses, and those in ``allowed_networks`` (the operator's exceptions)."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> AddressPolicy:
        return cls(parse_networks(networks))

    def is_listed(self, address: str | IPAddress) -> bool:
        """Whether ``address`` (or the IPv4 address it carries) is in an allowed network."""
        parsed = _parse(address)
        candidates: list[IPAddress] = [parsed]
        if isinstance(parsed, ipaddress.IPv6Address) and (carried := _embedded(parsed)):
            candidates.append(carried[1])
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allowed_networks
        )

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why a call must not connect to ``address``; None when it may."""
        if self.is_listed(address):
            return None
        why = address_refusal(address)
        return f"{_parse(address)} is not a public address ({why})" if why else None

    def refusals(self, addresses: Iterable[str | IPAddress]) -> list[str]:
        return [why for address in addresses if (why := self.refusal(address))]

    def allows_plain_http(self, addresses: Iterable[str | IPAddress]) -> bool:
        """Plain http is for the operator's listed networks only (development, a private
        link); every other call goes over https."""
        listed = [self.is_listed(address) for address in addresses]
        return bool(listed) and all(listed)
