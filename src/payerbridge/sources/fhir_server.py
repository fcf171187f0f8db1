"""A plan's existing FHIR R4 server (its Patient Access server) as a live source.

``records`` reads a member's resources type by type (``<Type>?patient=<key>``, the
Patient itself by ``Patient/<key>``), every ``next`` page followed, ``_lastUpdated``
when the server's CapabilityStatement offers it (else the pages are filtered by
``meta.lastUpdated`` here), all within one deadline for the whole call. The types are
read side by side on a small thread pool: one slow type then costs the budget once,
not once per type in turn, and the others still come back whole. At the deadline the
call returns what it has; what is not done, or failed, is a gap naming its types and
why (a partly read type keeps the pages read, and its gap says how many).

``roster`` reads the members through the server's Bulk Data ``Patient/$export`` of
Patients (kick-off, status polled as ``Retry-After`` asks, NDJSON files streamed),
or, when the server offers none, a paged ``Patient`` search.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from payerbridge.backends.ports import RecordsQuery, SourceAnswer, SourceGap
from payerbridge.errors import PartnerError, PartnerRejected, PartnerUnavailable
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.transport import GuardedTransport
from payerbridge.sources.capabilities import Capabilities, read_capabilities
from payerbridge.sources.connection import (
    FhirConnection,
    bundle_of,
    next_link,
    timed_out,
    updated_since,
)
from payerbridge.sources.roster import Waiting, read_roster
from payerbridge.sources.settings import FhirServerSettings
from payerbridge.sources.smart import SmartClient, SmartTokens, signing_key

__all__ = ["FhirServerSource"]

logger = logging.getLogger(__name__)

_CAPABILITIES_SECONDS = 3600.0  # the CapabilityStatement is read again after this


@dataclass
class _TypeRead:
    """One type's reading, shared by its worker and the call that waits for it."""

    resource_type: str
    records: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    done: bool = False
    gap: tuple[str, str, bool] | None = None  # code, why, retry_may_help
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class FhirServerSource:
    """The ``LiveSource`` of one FHIR R4 server (see the module's docstring)."""

    def __init__(
        self,
        settings: FhirServerSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        policy: AddressPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._client = httpx.Client(
            transport=transport or GuardedTransport(policy or AddressPolicy()),
            headers={"User-Agent": settings.user_agent},
            follow_redirects=False,  # member data and tokens go to the configured base only
        )
        tokens = None
        if settings.client_id is not None and settings.private_key is not None:
            us = SmartClient(
                settings.client_id,
                signing_key(settings.private_key),
                settings.scope_for_types(),
                settings.token_url,
            )
            tokens = SmartTokens(
                self._client, source_id=settings.id, base_url=settings.base_url, us=us
            )
        self.tokens = tokens
        self._http = FhirConnection(
            self._client,
            source_id=settings.id,
            base_url=settings.base_url,
            tokens=tokens,
            answer_limit=settings.answer_limit,
        )
        self._capabilities: tuple[Capabilities, float] | None = None
        self._capabilities_lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def types(self) -> frozenset[str]:
        return self.settings.types

    def close(self) -> None:
        self._client.close()

    def capabilities(self, timeout: float) -> Capabilities:
        """What the server's CapabilityStatement offers (read once an hour); when it
        cannot be read, what is safe to assume (no ``_lastUpdated``, no ``$export``)."""
        with self._capabilities_lock:
            now = self._clock()
            if self._capabilities is not None and self._capabilities[1] > now:
                return self._capabilities[0]
            found = read_capabilities(self._http, timeout)
            # What could not be read is asked again soon; what was read, in an hour.
            ttl = _CAPABILITIES_SECONDS if found.read else 60.0
            self._capabilities = (found, now + ttl)
            return found

    def records(self, query: RecordsQuery, *, budget_seconds: float) -> SourceAnswer:
        """The member's records within ``budget_seconds``; never raises for the source's
        sake: what it did not give is a gap."""
        started = self._clock()
        deadline = started + budget_seconds
        wanted = self.types if query.types is None else query.types & self.types
        reads = [_TypeRead(t) for t in sorted(wanted)]
        if reads:
            workers = min(self.settings.workers, len(reads))
            pool = ThreadPoolExecutor(workers, thread_name_prefix=f"source-{self.id}")
            futures = [pool.submit(self._read_type, read, query, deadline) for read in reads]
            wait(futures, timeout=max(0.0, deadline - self._clock()))
            pool.shutdown(wait=False, cancel_futures=True)
        answer = self._answer(reads, budget_seconds)
        logger.info(
            "source records read",
            extra={
                "source_id": self.id,
                "types": len(reads),
                "records": len(answer.records),
                "gaps": len(answer.gaps),
                "elapsed_ms": round((self._clock() - started) * 1000, 1),
            },
        )
        return answer

    def roster(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The server's Patients, through ``$export`` when it offers one, else a paged
        search; PartnerUnavailable or PartnerRejected when they cannot be read."""
        capabilities = self.capabilities(self.settings.timeout_seconds)
        yield from read_roster(
            self._http,
            capabilities,
            self.settings,
            since=since,
            waiting=Waiting(self._clock, self._sleep),
        )

    def _read_type(self, read: _TypeRead, query: RecordsQuery, deadline: float) -> None:
        try:
            if read.resource_type == "Patient":
                self._read_patient(read, query, deadline)
            else:
                self._search(read, query, deadline)
        except PartnerError as exc:
            with read.lock:
                read.gap = _gap_of(exc, self.id)
        except Exception:  # a bug here must still end as a gap, never as a short answer
            logger.exception("source read failed", extra={"source_id": self.id})
            with read.lock:
                read.gap = ("source-error", "could not be read (an internal error)", True)
        else:
            with read.lock:
                read.done = True

    def _left(self, deadline: float) -> float:
        return min(self.settings.timeout_seconds, deadline - self._clock())

    def _read_patient(self, read: _TypeRead, query: RecordsQuery, deadline: float) -> None:
        url = f"{self.settings.base_url}/Patient/{quote(query.member_key, safe='')}"
        response = self._http.get(url, self._left(deadline), what="Patient read")
        if response.status_code == 404:
            return  # the member is not (or no longer) at this source: nothing to give
        resource = _resource_of(response, self.id)
        if updated_since(resource, query.since):
            self._keep(read, [resource])

    def _search(self, read: _TypeRead, query: RecordsQuery, deadline: float) -> None:
        params: dict[str, str | int] = {
            "patient": query.member_key,
            "_count": self.settings.page_size,
        }
        filter_here = False
        if query.since is not None:
            if self.capabilities(self._left(deadline)).offers_last_updated(read.resource_type):
                params["_lastUpdated"] = f"gt{query.since.isoformat()}"
            else:
                filter_here = True
        url: str | None = f"{self.settings.base_url}/{read.resource_type}?{urlencode(params)}"
        while url is not None:
            if read.pages >= self.settings.max_pages:
                raise PartnerRejected(
                    f"source '{self.id}' search has more than {self.settings.max_pages} pages"
                )
            what = f"{read.resource_type} search page {read.pages + 1}"
            response = self._http.get(url, self._left(deadline), what=what)
            if response.status_code == 404:
                raise PartnerRejected(f"source '{self.id}' {what}: HTTP 404", status=404)
            page = bundle_of(response, self.id, what)
            found = [
                entry["resource"]
                for entry in page.get("entry") or []
                if isinstance(entry, dict)
                and isinstance(entry.get("resource"), dict)
                and entry["resource"].get("resourceType") == read.resource_type
                and (entry.get("search") or {}).get("mode", "match") == "match"
            ]
            if filter_here:
                found = [r for r in found if updated_since(r, query.since)]
            if not self._keep(read, found, page=True):
                return
            url = next_link(page, self.settings.base_url)

    def _keep(self, read: _TypeRead, found: list[dict[str, Any]], *, page: bool = False) -> bool:
        """Add what a page gave; False when the call already answered without it."""
        with read.lock:
            if read.abandoned:
                return False
            read.records.extend(found)
            read.pages += 1 if page else 0
            return True

    def _answer(self, reads: list[_TypeRead], budget_seconds: float) -> SourceAnswer:
        records: list[dict[str, Any]] = []
        missing: dict[tuple[str, str, bool], list[str]] = {}
        partial: list[SourceGap] = []
        for read in reads:
            with read.lock:
                read.abandoned = True
                records.extend(read.records)
                gap = read.gap
                if gap is None and not read.done:
                    why = f"not read within the {budget_seconds:g} s budget"
                    gap = ("source-timeout", why, True)
                pages = read.pages
            if gap is None:
                continue
            code, why, retry = gap
            if pages:
                text = f"{read.resource_type}: {pages} of its pages read, then {why}"
                partial.append(SourceGap(self.id, (read.resource_type,), code, text, retry))
            else:
                missing.setdefault(gap, []).append(read.resource_type)
        gaps = [
            SourceGap(self.id, tuple(types), code, f"{', '.join(types)}: {why}", retry)
            for (code, why, retry), types in missing.items()
        ]
        return SourceAnswer(records, gaps + partial)


def _gap_of(exc: PartnerError, source: str) -> tuple[str, str, bool]:
    """The gap code, why (the error's text without the source's name, which the gap
    carries) and whether asking again may help."""
    why = exc.text.removeprefix(f"source '{source}' ")
    if isinstance(exc, PartnerUnavailable):
        if timed_out(exc):
            return "source-timeout", f"timed out ({why})", True
        return "source-unavailable", why, True
    return "source-error", why, False


def _resource_of(response: httpx.Response, source: str) -> dict[str, Any]:
    try:
        resource = response.json()
    except ValueError:
        resource = None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise PartnerRejected(f"source '{source}' Patient read: the answer is not a Patient")
    return resource
