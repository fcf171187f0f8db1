"""Where a webhook may be posted: a public HTTPS address, checked after DNS resolution
when the subscription is made and again before every post (a name that resolved to a
public address yesterday may point inside the network today). Private, loopback,
link-local, shared and reserved addresses are refused, unless an operator allow-lists
the host for development (``PAYERBRIDGE_WEBHOOK_ALLOWED_HOSTS``). Redirects are never
followed: a 3xx answer is a failed attempt.

A name that changes between this check and the connection (DNS rebinding within
seconds) is not caught; pinning the checked address would need a transport of our own.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from payerbridge.errors import Issue, UnprocessableRequest

__all__ = ["WebhookTargets"]

Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _refused(text: str) -> UnprocessableRequest:
    return UnprocessableRequest(
        "the webhook URL is not acceptable", issues=[Issue(text, "url", "value")]
    )


class WebhookTargets:
    def __init__(self, allowed_hosts: Iterable[str] = (), resolve: Resolver = _resolve) -> None:
        self._allowed = frozenset(host.lower() for host in allowed_hosts)
        self._resolve = resolve

    def check(self, url: str) -> str:
        """``url`` when a webhook may be posted there; UnprocessableRequest saying why not."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or len(url) > 2000 or parts.username or parts.password:
            raise _refused(
                "give an absolute https:// URL without credentials, at most 2000 characters"
            )
        allowed = host in self._allowed
        if parts.scheme != "https" and not (parts.scheme == "http" and allowed):
            raise _refused("webhooks are posted over https:// only")
        if allowed:
            return url
        try:
            addresses = list(self._resolve(host))
        except (OSError, UnicodeError) as exc:
            raise _refused(f"the webhook host does not resolve ({type(exc).__name__})") from exc
        if not addresses:
            raise _refused("the webhook host does not resolve")
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise _refused(
                    "the webhook host resolves to a private, loopback, link-local or "
                    "reserved address; only public addresses are posted to"
                )
        return url
