"""The egress address policy, generated: every address in a range that is not public, and
every IPv6 form that carries one (IPv4-mapped, NAT64, 6to4), is refused; public
addresses, and public ones carried by NAT64 and 6to4, are allowed; a listed network
opens its addresses and no others.

Examples per test: 200 (``EGRESS_EXAMPLES=100000`` for a longer run by hand).
"""

from __future__ import annotations

import ipaddress
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.net.addresses import AddressPolicy, address_refusal
from payerbridge.net.origins import origin, same_origin

EXAMPLES = int(os.environ.get("EGRESS_EXAMPLES", "200"))

NOT_PUBLIC_V4 = [
    "0.0.0.0/8",  # this network
    "10.0.0.0/8",
    "100.64.0.0/10",  # shared (carrier-grade NAT)
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, cloud metadata
    "172.16.0.0/12",
    "192.0.0.0/29",
    "192.0.2.0/24",  # documentation
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
]
NOT_PUBLIC_V6 = [
    "::1/128",
    "::/128",
    "::/96",  # IPv4-compatible
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard
    "2001::/32",  # Teredo
    "2001:db8::/32",  # documentation
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local
    "ff00::/8",  # multicast, every scope
]
PUBLIC_V4 = ["1.1.1.0/24", "8.0.0.0/8", "13.0.0.0/8", "93.184.0.0/16", "142.250.0.0/15"]
PUBLIC_V6 = ["2600::/12", "2a00::/12", "2001:4860::/32"]


def _in(networks: list[str]) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    def draw(network: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        net = ipaddress.ip_network(network)
        first, last = int(net.network_address), int(net.broadcast_address)
        return st.integers(first, last).map(
            lambda n: ipaddress.IPv6Address(n) if net.version == 6 else ipaddress.IPv4Address(n)
        )

    return st.sampled_from(networks).flatmap(draw)


def _embeddings(v4: ipaddress.IPv4Address, low: int) -> list[ipaddress.IPv6Address]:
    """Every IPv6 form that carries ``v4``: mapped, NAT64 (RFC 6052), 6to4 (any suffix)."""
    n = int(v4)
    return [
        ipaddress.IPv6Address((0xFFFF << 32) | n),
        ipaddress.IPv6Address((0x64FF9B << 96) | n),
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | (low & ((1 << 80) - 1))),
    ]


not_public_v4 = _in(NOT_PUBLIC_V4) | st.just(ipaddress.IPv4Address("255.255.255.255"))
public_v4 = _in(PUBLIC_V4)


@settings(max_examples=EXAMPLES, deadline=None)
@given(address=not_public_v4 | _in(NOT_PUBLIC_V6))
def test_every_address_that_is_not_public_is_refused(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    assert address_refusal(address) is not None
    assert AddressPolicy().refusal(str(address)) is not None


@settings(max_examples=EXAMPLES, deadline=None)
@given(v4=not_public_v4, low=st.integers(0, 2**80 - 1))
def test_every_ipv6_form_of_an_address_that_is_not_public_is_refused(
    v4: ipaddress.IPv4Address, low: int
) -> None:
    for carried in _embeddings(v4, low):
        why = AddressPolicy().refusal(str(carried))
        assert why is not None and str(v4) in why, carried


@settings(max_examples=EXAMPLES, deadline=None)
@given(address=public_v4 | _in(PUBLIC_V6))
def test_public_addresses_are_allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    assert AddressPolicy().refusal(str(address)) is None


@settings(max_examples=EXAMPLES, deadline=None)
@given(v4=public_v4, low=st.integers(0, 2**80 - 1))
def test_nat64_and_6to4_forms_of_public_addresses_are_allowed(
    v4: ipaddress.IPv4Address, low: int
) -> None:
    for carried in _embeddings(v4, low):
        assert AddressPolicy().refusal(str(carried)) is None, carried


@settings(max_examples=EXAMPLES, deadline=None)
@given(loopback=_in(["127.0.0.0/8"]), other=_in([n for n in NOT_PUBLIC_V4 if n != "127.0.0.0/8"]))
def test_a_listed_network_opens_its_own_addresses_and_no_others(
    loopback: ipaddress.IPv4Address, other: ipaddress.IPv4Address
) -> None:
    policy = AddressPolicy.allowing(["127.0.0.0/8", "::1/128"])
    assert policy.refusal(str(loopback)) is None
    assert policy.refusal(f"::ffff:{loopback}") is None  # the same address, mapped
    assert policy.allows_plain_http([str(loopback), "::1"])
    assert policy.refusal(str(other)) is not None
    assert not policy.allows_plain_http([str(loopback), "93.184.215.14"])


def test_scoped_and_bracketed_forms_are_read() -> None:
    assert AddressPolicy().refusal("fe80::1%eth0") is not None
    assert AddressPolicy().refusal("[::1]") is not None


def test_origins_compare_scheme_host_and_port() -> None:
    assert origin("HTTPS://Fhir.Example.com/r4") == ("https", "fhir.example.com", 443)
    assert same_origin("https://a.example/fhir", "https://a.example:443/auth/token")
    assert not same_origin("https://a.example/fhir", "http://a.example/token")
    assert not same_origin("https://a.example/fhir", "https://a.example:8443/token")
    assert not same_origin("https://a.example/fhir", "https://a.example.evil/token")
    assert not same_origin("https://a.example/fhir", "https://evil@b.example/token")
    assert origin("ftp://a.example/") is None and origin("https://a.example:99999/") is None
