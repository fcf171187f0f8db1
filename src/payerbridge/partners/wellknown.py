"""Fetching a payer's HRex ``.well-known/davinci-configuration`` (ADR 0061) through the
egress policy's transport, at most ``MAX_WELLKNOWN_BYTES`` read (counted while reading,
before anything is parsed: ``routing.wellknown`` reads what comes back).

Where the document sends us is where member data will go, so a redirect is followed
only on the document's own origin, and only a few times; one to another origin is
refused, naming it. What went wrong is an UnprocessableRequest that changes nothing.
"""

from __future__ import annotations

import httpx

from payerbridge.errors import Issue, PartnerError, UnprocessableRequest
from payerbridge.net.origins import has_userinfo, origin, same_origin
from payerbridge.net.transport import AnswerTooLarge
from payerbridge.partners.answers import send_capped
from payerbridge.routing.wellknown import MAX_WELLKNOWN_BYTES

__all__ = ["MAX_REDIRECTS", "fetch_wellknown"]

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)


def fetch_wellknown(client: httpx.Client, location: str, limit: int) -> bytes:
    """The document at ``location`` (``limit``: the most bytes read, capped at
    ``MAX_WELLKNOWN_BYTES``), following same-origin redirects only."""
    if origin(location) is None or has_userinfo(location):
        raise _unread(location, "is not an absolute http(s) URL without user:password@")
    url = location
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request("GET", url, headers={"Accept": "application/json"})
        try:
            response = send_capped(
                client,
                request,
                who="the partner's davinci-configuration",
                limit=min(limit, MAX_WELLKNOWN_BYTES),
                setting="PARTNER_MAX_DOCUMENT_BYTES",
            )
        except PartnerError as exc:
            too_large = isinstance(exc.__cause__, AnswerTooLarge)
            code = "too-costly" if too_large else "not-found"
            raise _unread(location, f"could not be read: {exc.text}", code) from exc
        if response.status_code not in _REDIRECTS:
            if response.status_code != 200:
                raise _unread(location, f"answered HTTP {response.status_code}")
            return response.content
        target = response.headers.get("location")
        if not target:
            raise _unread(location, f"answered HTTP {response.status_code} without Location")
        url = str(httpx.URL(url).join(target))
        if not same_origin(url, location) or has_userinfo(url):
            raise _unread(
                location,
                f"redirects to another origin ({url[:200]}); a payer's endpoints are read "
                "from its own origin only",
                "security",
            )
    raise _unread(location, f"redirects more than {MAX_REDIRECTS} times")


def _unread(location: str, why: str, code: str = "not-found") -> UnprocessableRequest:
    text = f"the davinci-configuration document at {location[:200]} {why}; nothing was changed"
    return UnprocessableRequest(text, issues=[Issue(text, "wellknown_url", code)])
