"""One source's HTTP calls: under its FHIR base only, through the egress transport,
with its access token, each bounded by a timeout and read up to a cap.

Outcomes become our errors once, here: a transport failure, a timeout, 429 or 5xx is
PartnerUnavailable (its cause says which: ``timed_out`` tells a timeout); a refused
token after one renewal is PartnerAuthRejected; a URL off the base, an address the
egress policy refuses, an answer over its cap, another 4xx or a page that is not a
Bundle is PartnerRejected. Texts name the source and the status, never a URL (a search
URL carries the member's id) nor a body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import orjson

from payerbridge.clock import utcnow
from payerbridge.errors import PartnerAuthRejected, PartnerRejected, PartnerUnavailable
from payerbridge.exchange.calls.retry import retry_after_seconds
from payerbridge.net.origins import same_origin
from payerbridge.net.transport import AddressRefused, AnswerTooLarge, send_bounded
from payerbridge.sources.smart import SmartTokens

__all__ = [
    "FHIR_JSON",
    "FhirConnection",
    "bundle_of",
    "next_link",
    "timed_out",
    "updated_since",
]

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"


def timed_out(exc: BaseException) -> bool:
    """Whether a PartnerUnavailable came from a timeout (ours or the server's 504)."""
    return isinstance(exc.__cause__, httpx.TimeoutException) or (
        isinstance(exc, PartnerUnavailable) and exc.status == 504
    )


class FhirConnection:
    def __init__(
        self,
        client: httpx.Client,
        *,
        source_id: str,
        base_url: str,
        tokens: SmartTokens | None,
        answer_limit: int,
    ) -> None:
        self.client = client
        self.source = source_id
        self.base = base_url
        self.tokens = tokens
        self.answer_limit = answer_limit

    def get(
        self,
        url: str,
        timeout: float,
        *,
        what: str,
        accept: str = FHIR_JSON,
        on_origin: bool = False,
        **headers: str,
    ) -> httpx.Response:
        """The answer to a GET of ``url`` (a 2xx or a 404, read whole); our error else.
        ``url`` must be under the FHIR base, or with ``on_origin`` (a URL the server
        named: an export's status) on its origin."""
        if on_origin and not same_origin(url, self.base):
            raise PartnerRejected(f"source '{self.source}' {what}: a URL on another origin")
        if not on_origin:
            self._check_on_base(url, what)
        refused: str | None = None
        for attempt in (1, 2):
            request_headers = {"Accept": accept, **headers}
            if self.tokens is not None:
                refused = self.tokens.authorization(timeout)
                request_headers["Authorization"] = refused
            response = self._send(url, timeout, what, request_headers)
            if response.status_code != 401 or self.tokens is None or attempt == 2:
                break
            assert refused is not None
            self.tokens.forget(refused)  # expired or revoked early: one new token
        return self._checked(response, what)

    @contextmanager
    def stream(self, url: str, timeout: float, *, what: str, token: bool) -> Iterator[Any]:
        """The lines of a file at ``url`` (a Bulk Data NDJSON file), streamed."""
        if not same_origin(url, self.base):
            raise PartnerRejected(
                f"source '{self.source}' named a file on another origin than its FHIR base; "
                "not fetched"
            )
        headers = {"Accept": "application/fhir+ndjson"}
        if token and self.tokens is not None:
            headers["Authorization"] = self.tokens.authorization(timeout)
        request = self.client.build_request(
            "GET", url, headers=headers, timeout=httpx.Timeout(timeout)
        )
        try:
            response = self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, what) from exc
        try:
            self._checked(response, what, read=False)
            yield response.iter_lines()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, what) from exc
        finally:
            response.close()

    def _check_on_base(self, url: str, what: str) -> None:
        if not url.startswith(f"{self.base}/"):
            raise PartnerRejected(
                f"source '{self.source}' {what}: pointed us at a URL outside its FHIR base; "
                "nothing was sent there"
            )

    def _send(self, url: str, timeout: float, what: str, headers: dict[str, str]) -> httpx.Response:
        if timeout <= 0:
            raise PartnerUnavailable(
                f"source '{self.source}' {what}: no time left"
            ) from httpx.TimeoutException("deadline")
        request = self.client.build_request(
            "GET", url, headers=headers, timeout=httpx.Timeout(timeout)
        )
        try:
            return send_bounded(self.client, request, limit=self.answer_limit)
        except AnswerTooLarge as exc:
            raise PartnerRejected(
                f"source '{self.source}' {what}: the answer is larger than {exc.limit} bytes; "
                "reading stopped there"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, what) from exc

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> Exception:
        if isinstance(exc, AddressRefused):
            return PartnerRejected(f"source '{self.source}' is not called: {exc}")
        logger.warning(
            "source unreachable",
            extra={"source_id": self.source, "error_type": type(exc).__name__},
        )
        return PartnerUnavailable(
            f"source '{self.source}' {what}: unreachable ({type(exc).__name__})"
        )

    def _checked(self, response: httpx.Response, what: str, *, read: bool = True) -> httpx.Response:
        status = response.status_code
        if status < 300 or status == 404:
            return response
        text = f"source '{self.source}' {what}: HTTP {status}"
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"), now=utcnow())
            raise PartnerUnavailable(
                text + (f" (retry after {wait:.0f} s)" if wait is not None else ""),
                status=status,
            )
        if status in (401, 403):
            raise PartnerAuthRejected(
                text + ": our token was refused; check the client's registration and scope",
                status=status,
            )
        raise PartnerRejected(text, status=status)


def bundle_of(response: httpx.Response, source: str, what: str) -> dict[str, Any]:
    """The page as a Bundle; PartnerRejected when it is not one."""
    try:
        page = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        page = None
    if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
        raise PartnerRejected(f"source '{source}' {what}: the answer is not a Bundle")
    if not isinstance(page.get("entry") or [], list):
        raise PartnerRejected(f"source '{source}' {what}: the Bundle's entry is not a list")
    return page


def next_link(page: dict[str, Any], base: str) -> str | None:
    """The page's ``next`` link, absolute (some servers write it relative to the base)."""
    for link in page.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url:
                return None
            return url if "://" in url else f"{base}/{url.lstrip('/')}"
    return None


def updated_since(resource: dict[str, Any], since: datetime | None) -> bool:
    """Whether to keep ``resource`` for a query ``since``: changed after it, or not
    saying when it changed (kept: better twice than never)."""
    if since is None:
        return True
    text = (resource.get("meta") or {}).get("lastUpdated")
    if not isinstance(text, str):
        return True
    try:
        updated = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True
    if updated.tzinfo is None or since.tzinfo is None:
        return updated.replace(tzinfo=None) > since.replace(tzinfo=None)
    return updated > since
