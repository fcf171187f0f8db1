"""Where a webhook may be posted: an https:// address whose host resolves to addresses
the egress policy allows (``net.addresses``: public ones, and those in networks the
operator listed, where plain http is allowed too), checked when the subscription is
made and again before every post (a name that resolved to a public address yesterday
may point inside the network today). Redirects are never followed: a 3xx answer is a
failed attempt.

The post itself goes through ``net.transport.GuardedTransport``, which checks the
address it connects to, so a name that changes between this check and the connection
(DNS rebinding) is refused there too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from payerbridge.errors import Issue, UnprocessableRequest
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.transport import resolve

__all__ = ["WebhookTargets"]

Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    return resolve(host, 443)


def _refused(text: str) -> UnprocessableRequest:
    return UnprocessableRequest(
        "the webhook URL is not acceptable", issues=[Issue(text, "url", "value")]
    )


class WebhookTargets:
    def __init__(self, policy: AddressPolicy | None = None, resolve: Resolver = _resolve) -> None:
        self._policy = policy or AddressPolicy()
        self._resolve = resolve

    @property
    def policy(self) -> AddressPolicy:
        return self._policy

    def check(self, url: str) -> str:
        """``url`` when a webhook may be posted there; UnprocessableRequest saying why not."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or len(url) > 2000 or parts.username or parts.password:
            raise _refused(
                "give an absolute https:// URL without credentials, at most 2000 characters"
            )
        if parts.scheme not in ("https", "http"):
            raise _refused("webhooks are posted over https:// only")
        try:
            addresses = list(self._resolve(host))
        except (OSError, UnicodeError) as exc:
            raise _refused(f"the webhook host does not resolve ({type(exc).__name__})") from exc
        if not addresses:
            raise _refused("the webhook host does not resolve")
        if parts.scheme != "https" and not self._policy.allows_plain_http(addresses):
            raise _refused("webhooks are posted over https:// only")
        refusals = self._policy.refusals(addresses)
        if refusals:
            raise _refused(
                "the webhook host resolves to a private, loopback, link-local or reserved "
                f"address ({refusals[0]}); only public addresses are posted to"
            )
        return url
