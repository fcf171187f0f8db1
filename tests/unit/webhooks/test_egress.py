"""Where webhooks may go: public HTTPS addresses after resolution; loopback, private,
link-local and reserved ones only in networks an operator lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pytest

from payerbridge.errors import UnprocessableRequest
from payerbridge.net.addresses import AddressPolicy
from payerbridge.webhooks.egress import WebhookTargets

DNS = {
    "hooks.example.com": ["93.184.215.14"],
    "inside.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.215.14", "192.168.0.9"],
    "metadata.example.com": ["169.254.169.254"],
    "v6.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "v6-local.example.com": ["fe80::1%eth0"],
}


def resolve(host: str) -> Iterable[str]:
    if host in DNS:
        return DNS[host]
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        raise OSError("no such host") from None


def targets(*allowed: str) -> WebhookTargets:
    return WebhookTargets(AddressPolicy.allowing(allowed), resolve=resolve)


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/p2p", "https://v6.example.com/x", "https://93.184.215.14/"]
)
def test_public_https_targets_are_accepted(url: str) -> None:
    assert targets().check(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "not a public address"),
        ("https://localhost/x", "resolve"),
        ("https://inside.example.com/x", "not a public address"),
        ("https://mixed.example.com/x", "not a public address"),
        ("https://metadata.example.com/latest", "not a public address"),
        ("https://169.254.169.254/latest", "not a public address"),
        ("https://[::1]/x", "not a public address"),
        ("https://v6-local.example.com/x", "not a public address"),
        ("https://100.64.0.1/x", "not a public address"),
        ("https://nowhere.invalid/x", "does not resolve"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("ftp://hooks.example.com/x", "https"),
        ("/relative", "absolute"),
        ("https://hooks.example.com/" + "a" * 2000, "2000"),
    ],
)
def test_other_targets_are_refused_with_the_field_named(url: str, why: str) -> None:
    with pytest.raises(UnprocessableRequest) as refused:
        targets().check(url)
    issue = refused.value.issues[0]
    assert issue.expression == "url" and why in issue.text


def test_a_listed_network_may_be_local_and_plain_http() -> None:
    local = targets("127.0.0.0/8", "::1/128")
    assert local.check("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
    assert local.check("http://[::1]/x") == "http://[::1]/x"
    with pytest.raises(UnprocessableRequest):
        local.check("http://10.0.0.1/x")
    with pytest.raises(UnprocessableRequest) as public_over_http:
        local.check("http://hooks.example.com/x")
    assert "https" in public_over_http.value.issues[0].text


@pytest.mark.parametrize(
    "address",
    ["224.0.0.1", "ff02::1", "64:ff9b::7f00:1", "2002:7f00:1::", "::ffff:127.0.0.1", "::127.0.0.1"],
)
def test_multicast_nat64_and_6to4_forms_of_loopback_are_refused(address: str) -> None:
    with pytest.raises(UnprocessableRequest) as refused:
        targets().check(f"https://[{address}]/x" if ":" in address else f"https://{address}/x")
    assert "not a public address" in refused.value.issues[0].text
