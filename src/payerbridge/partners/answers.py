"""How much of a partner's answer we read, and how a partner call that could not be made
or read becomes our error: the caps (``PAYERBRIDGE_PARTNER_MAX_*_BYTES``), and the one
send that enforces them through ``net.transport``.

An answer over its cap, or a host that resolves to an address we do not call, fails the
call as PartnerRejected: terminal, never retried (the same call would meet the same
answer); a transport failure is PartnerUnavailable (retryable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from payerbridge.errors import PartnerRejected, PartnerUnavailable
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.transport import (
    AddressRefused,
    AnswerTooLarge,
    GuardedTransport,
    Resolver,
    resolve,
    send_bounded,
)

__all__ = ["MIB", "Outbound", "ResponseCaps", "refused_address", "send_capped", "too_large"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class ResponseCaps:
    """The most bytes read of each kind of partner answer."""

    answer: int = 32 * MIB  # $member-match, one $everything or search page, a bulk status
    record: int = 256 * MIB  # one member's record over all its pages
    file: int = 256 * MIB  # one Bulk Data file
    document: int = 2 * MIB  # discovery documents, token answers, JWK Sets


@dataclass(frozen=True)
class Outbound:
    """How we reach out (a partner, a client's JWK Set): the timeout of a call, the
    addresses we may connect to (``policy``) with the resolver that checks them, and the
    transport (a test's mock; None: the guarded one)."""

    timeout_seconds: float
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    transport: httpx.BaseTransport | None = None
    resolver: Resolver = resolve

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        """An HTTP client that follows no redirect: member data and tokens go to the
        registered URL only."""
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout_seconds),
            transport=self.transport or GuardedTransport(self.policy, resolver=self.resolver),
            headers=headers,
            follow_redirects=False,
        )


def too_large(who: str, limit: int, setting: str) -> PartnerRejected:
    return PartnerRejected(
        f"{who} sent an answer larger than {limit} bytes; reading stopped there and nothing "
        f"of it is kept (PAYERBRIDGE_{setting}); not retried"
    )


def refused_address(who: str, exc: AddressRefused) -> PartnerRejected:
    return PartnerRejected(f"{who} is not called: {exc}")


def send_capped(
    client: httpx.Client, request: httpx.Request, *, who: str, limit: int, setting: str
) -> httpx.Response:
    """Send ``request`` and read at most ``limit`` bytes of the answer; our errors for
    what went wrong (``who`` names the partner or endpoint in them)."""
    try:
        return send_bounded(client, request, limit=limit)
    except AnswerTooLarge as exc:
        raise too_large(who, exc.limit, setting) from exc
    except AddressRefused as exc:
        raise refused_address(who, exc) from exc
    except httpx.HTTPError as exc:
        raise PartnerUnavailable(f"{who} is unreachable ({type(exc).__name__})") from exc
