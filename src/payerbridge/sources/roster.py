"""The members a FHIR server holds: its Bulk Data ``Patient/$export`` of Patients when it
offers one, else a paged ``Patient`` search, Patients yielded as they are read.

The export: kick-off (``Prefer: respond-async``) → 202 and a status URL, polled as its
``Retry-After`` asks (within ``wait_limit``), then each NDJSON file of the manifest
streamed line by line (with the token when the manifest says ``requiresAccessToken``),
and the job deleted. A server that answers the kick-off 404, 405 or 501 has no
export after all: the search is used. Every URL it names must be on its origin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from payerbridge.clock import utcnow
from payerbridge.errors import PartnerError, PartnerRejected, PartnerUnavailable
from payerbridge.exchange.calls.retry import retry_after_seconds
from payerbridge.net.origins import same_origin
from payerbridge.sources.capabilities import Capabilities
from payerbridge.sources.connection import FhirConnection, bundle_of, next_link, updated_since
from payerbridge.sources.settings import FhirServerSettings

__all__ = ["Waiting", "read_roster"]

logger = logging.getLogger(__name__)

_NO_EXPORT = (404, 405, 501)
_POLL_DEFAULT, _POLL_MOST = 1.0, 60.0  # seconds between status polls


@dataclass(frozen=True)
class Waiting:
    """How a roster read tells the time and waits between export status polls (the
    source's clock and sleep; a test's fakes)."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]


def read_roster(
    http: FhirConnection,
    capabilities: Capabilities,
    settings: FhirServerSettings,
    *,
    since: datetime | None,
    waiting: Waiting,
) -> Iterator[dict[str, Any]]:
    """The server's Patients, as ``settings`` bound the read (the page size and count,
    the timeout of a call, the longest an ``$export`` may take)."""
    timeout = settings.timeout_seconds
    status_url = None
    if capabilities.patient_export or not capabilities.read:
        status_url = _kick_off(http, since, timeout)
    if status_url is None:
        logger.info("source roster by search", extra={"source_id": http.source})
        yield from _search(http, capabilities, since, settings)
        return
    give_up_at = waiting.clock() + settings.export_wait_seconds
    manifest = _wait_for(http, status_url, timeout, give_up_at, waiting)
    count = 0
    for number, url in enumerate(_patient_files(http, manifest), 1):
        token = bool(manifest.get("requiresAccessToken", True))
        with http.stream(url, timeout, what=f"export file {number}", token=token) as lines:
            for line_number, line in enumerate(lines, 1):
                if line.strip():
                    count += 1
                    yield _patient(line, http.source, number, line_number)
    logger.info("source roster exported", extra={"source_id": http.source, "patients": count})
    _delete(http, status_url, timeout)


def _kick_off(http: FhirConnection, since: datetime | None, timeout: float) -> str | None:
    params = {"_type": "Patient", **({"_since": since.isoformat()} if since else {})}
    response = http.get(
        f"{http.base}/Patient/$export?{urlencode(params)}",
        timeout,
        what="$export kick-off",
        Prefer="respond-async",
    )
    if response.status_code in _NO_EXPORT:
        return None
    location = response.headers.get("Content-Location")
    if response.status_code != 202 or not location:
        raise PartnerRejected(
            f"source '{http.source}' did not accept the Patient $export "
            f"(HTTP {response.status_code}, {'a' if location else 'no'} status URL)",
            status=response.status_code,
        )
    if not same_origin(location, http.base):
        raise PartnerRejected(
            f"source '{http.source}' named an export status URL on another origin; not polled"
        )
    return str(location)


def _wait_for(
    http: FhirConnection, status_url: str, timeout: float, give_up_at: float, waiting: Waiting
) -> dict[str, Any]:
    """The manifest, once the export is done."""
    while True:
        response = http.get(
            status_url, timeout, what="$export status", accept="application/json", on_origin=True
        )
        if response.status_code == 200:
            try:
                manifest = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                manifest = None
            if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
                raise PartnerRejected(f"source '{http.source}' export manifest has no output list")
            return manifest
        if response.status_code != 202:
            raise PartnerRejected(
                f"source '{http.source}' export status answered HTTP {response.status_code}",
                status=response.status_code,
            )
        wait = retry_after_seconds(response.headers.get("Retry-After"), now=utcnow())
        wait = min(_POLL_MOST, _POLL_DEFAULT if wait is None else wait)
        if waiting.clock() + wait > give_up_at:
            raise PartnerUnavailable(
                f"source '{http.source}' export was not done within the time allowed "
                f"(progress: {response.headers.get('X-Progress', 'not said')[:80]})"
            )
        waiting.sleep(wait)


def _patient_files(http: FhirConnection, manifest: dict[str, Any]) -> list[str]:
    urls = []
    for output in manifest["output"]:
        if not isinstance(output, dict) or output.get("type") != "Patient":
            continue
        url = output.get("url")
        if not isinstance(url, str):
            raise PartnerRejected(
                f"source '{http.source}' export manifest lists a file without a url"
            )
        urls.append(url)
    return urls


def _patient(line: str, source: str, file_number: int, line_number: int) -> dict[str, Any]:
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError:
        resource = None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise PartnerRejected(
            f"source '{source}' export file {file_number} line {line_number} is not a Patient"
        )
    return resource


def _delete(http: FhirConnection, status_url: str, timeout: float) -> None:
    """Tell the server it may drop the job's files (a courtesy: failures are ignored)."""
    headers = {}
    if http.tokens is not None:
        try:
            headers["Authorization"] = http.tokens.authorization(timeout)
        except PartnerError:
            return
    try:
        http.client.delete(status_url, headers=headers, timeout=timeout)
    except Exception:  # noqa: BLE001 - the roster is read; a failed courtesy changes nothing
        logger.info("source export not deleted", extra={"source_id": http.source})


def _search(
    http: FhirConnection,
    capabilities: Capabilities,
    since: datetime | None,
    settings: FhirServerSettings,
) -> Iterator[dict[str, Any]]:
    max_pages, timeout = settings.max_pages, settings.timeout_seconds
    params: dict[str, str | int] = {"_count": settings.page_size}
    filter_here = since is not None and not capabilities.offers_last_updated("Patient")
    if since is not None and not filter_here:
        params["_lastUpdated"] = f"gt{since.isoformat()}"
    url: str | None = f"{http.base}/Patient?{urlencode(params)}"
    pages = 0
    while url is not None:
        pages += 1
        if pages > max_pages:
            raise PartnerRejected(
                f"source '{http.source}' Patient search has over {max_pages} pages"
            )
        what = f"Patient search page {pages}"
        response = http.get(url, timeout, what=what)
        if response.status_code == 404:
            raise PartnerRejected(f"source '{http.source}' {what}: HTTP 404", status=404)
        page = bundle_of(response, http.source, what)
        for entry in page.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
                continue
            if not filter_here or updated_since(resource, since):
                yield resource
        url = next_link(page, http.base)
