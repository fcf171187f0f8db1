"""The origin of a URL (scheme, host, port; RFC 6454), pure: a partner's token and
registration endpoints must share its FHIR base's origin unless an operator named them.
And whether a URL carries credentials (``user:password@``), which no URL we call may:
httpx would send them as Basic auth to whoever answers there (ADR 0046)."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

__all__ = ["UrlFault", "has_userinfo", "origin", "same_origin", "url_fault"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an absolute http(s) URL; None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def same_origin(url: str, other: str) -> bool:
    """Whether both are absolute http(s) URLs of one origin."""
    first = origin(url)
    return first is not None and first == origin(other)


def has_userinfo(url: str) -> bool:
    """Whether ``url``'s authority names a user (or a password): ``https://u:p@host/``,
    ``https://u@host/``, ``https://@host/`` alike."""
    try:
        return "@" in urlsplit(url.strip()).netloc
    except ValueError:
        return False


class UrlFault(StrEnum):
    """Why a URL is not one we may call; each caller names it in its own field's words."""

    NOT_HTTP = "not-http"  # not an absolute http(s) URL with a host
    CREDENTIALS = "credentials"  # user:password@, which would go out as Basic auth


def url_fault(url: str) -> UrlFault | None:
    """What stops ``url`` being an address we call (the first fault found); None: none."""
    if origin(url) is None:
        return UrlFault.NOT_HTTP
    if has_userinfo(url):
        return UrlFault.CREDENTIALS
    return None
