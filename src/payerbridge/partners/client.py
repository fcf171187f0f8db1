"""The partner client over httpx: HRex ``$member-match``, PDex ``$everything`` and the
Bulk Data requests of bulk onboarding (kick-off, status, files).

Turns HTTP outcomes into our errors, in the classes of ``exchange.calls.retry``: 422 with
``not-found`` / ``multiple-matches`` into NoMatch / AmbiguousMatch, one coded as a
match under review into MatchUnderReview, other 422s into ConsentDenied (HRex
mm-11), as is a 403 that carries a consent deny reason; other 401/403 into
PartnerAuthRejected; 429, 5xx, timeouts and transport failures into
PartnerUnavailable (with the partner's ``Retry-After``); other 4xx and unreadable
bodies into PartnerRejected. Bodies are never logged.

Every call goes through ``net.transport.GuardedTransport`` (the address connected to is
the address checked against the egress policy) and every answer is read up to its cap
(``partners.answers.ResponseCaps``): over it, or at a refused address, the call fails
as PartnerRejected, not retried.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from joserfc.jwk import ECKey

from payerbridge.clock import utcnow
from payerbridge.errors import (
    AmbiguousMatch,
    ConsentDenied,
    MatchUnderReview,
    NoMatch,
    PartnerAuthRejected,
    PartnerRejected,
    PartnerUnavailable,
)
from payerbridge.exchange.calls.retry import FailureClass, classify_status, retry_after_seconds
from payerbridge.exchange.ports import ProbeAnswer, RecordRead, Retrieved
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.fhir import codes
from payerbridge.fhir.completeness import Gap, outcome_entry
from payerbridge.fhir.member_match import MemberMatchResult, parse_member_match_response
from payerbridge.fhir.resources import ID_PATTERN
from payerbridge.net.transport import AddressRefused, AnswerTooLarge
from payerbridge.onboarding.ports import BulkStatus
from payerbridge.partners.answers import Outbound, ResponseCaps, refused_address, too_large
from payerbridge.partners.auth import OurUdapClient, PartnerTokenSource
from payerbridge.partners.calls import send_counted
from payerbridge.routing.model import Partner
from payerbridge.timestamps import utc_iso

__all__ = ["MAX_EVERYTHING_PAGES", "HttpxPartnerClient"]

logger = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
_PATIENT_REFERENCE = re.compile(r"^Patient/[A-Za-z0-9\-.]{1,64}$")


def _outcome_issues(response: httpx.Response) -> list[dict[str, Any]]:
    """The issues of the partner's OperationOutcome; none when the body is anything else."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    return [issue for issue in body.get("issue") or [] if isinstance(issue, dict)]


def _outcome_codes(response: httpx.Response) -> list[str]:
    return [str(issue.get("code")) for issue in _outcome_issues(response)]


def _coded(response: httpx.Response, system: str) -> str | None:
    """The code under ``system`` in a partner's OperationOutcome ``details.coding``, if any:
    our consent deny reasons and member-match outcomes travel that way."""
    for issue in _outcome_issues(response):
        for coding in (issue.get("details") or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("system") == system:
                return str(coding.get("code"))
    return None


def _consent_reason(response: httpx.Response) -> str | None:
    """A refusal on consent grounds is a decision, not a credentials problem."""
    return _coded(response, codes.CONSENT_DENY_REASON)


def _outcome_text(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
        texts = [
            ((i.get("details") or {}).get("text") or i.get("diagnostics") or "")
            for i in body.get("issue") or []
        ]
        return "; ".join(t for t in texts if t)[:500] or f"HTTP {response.status_code}"
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP {response.status_code}"


def _answer_of(partner: Partner, response: httpx.Response) -> httpx.Response:
    """The partner's answer, when it is one to read (a success, 422, or a refusal the
    caller reads); a consent refusal, a retryable status or one that asks for new
    credentials raised as our error."""
    if response.status_code < 400 or response.status_code == 422:
        return response
    if response.status_code == 403 and (reason := _consent_reason(response)):
        raise ConsentDenied(_outcome_text(response), reason=reason)
    failure = classify_status(response.status_code)
    text = f"partner '{partner.id}' answered HTTP {response.status_code}"
    if failure is FailureClass.RETRYABLE:
        raise PartnerUnavailable(
            text,
            status=response.status_code,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), now=utcnow()),
        )
    if failure is FailureClass.REVALIDATE:
        raise PartnerAuthRejected(text, status=response.status_code)
    return response


@dataclass(frozen=True)
class _Request:
    """One request to a partner: the method, the URL (under its FHIR base), the key it is
    sent again under, and what goes with it (a body, a timeout other than the client's,
    headers, a cap other than an answer's)."""

    method: str
    url: str
    idempotency_key: str
    body: dict[str, Any] | None = None
    timeout: float | None = None
    headers: dict[str, str] | None = None
    limit: int | None = None


class HttpxPartnerClient:
    def __init__(
        self,
        *,
        outbound: Outbound,
        user_agent: str,
        key: ECKey,
        udap: OurUdapClient | None = None,
        caps: ResponseCaps | None = None,
    ) -> None:
        # No redirect followed: member data goes to the registered base URL only.
        self._client = outbound.client({"User-Agent": user_agent, "Accept": FHIR_JSON})
        self._caps = caps or ResponseCaps()
        self._tokens = PartnerTokenSource(
            self._client, key, udap, document_limit=self._caps.document
        )

    def close(self) -> None:
        self._client.close()

    def refresh_credentials(self, partner: Partner) -> None:
        """Drop the cached access token of ``partner`` after a 401/403: the retry that
        follows (the one allowed "needs-revalidation" try) asks for a new one."""
        self._tokens.forget(partner)
        logger.info("partner credentials refreshed", extra={"partner_id": partner.id})

    def _send(self, partner: Partner, asked: _Request) -> httpx.Response:
        method, url, idempotency_key = asked.method, asked.url, asked.idempotency_key
        body, timeout, limit = asked.body, asked.timeout, asked.limit
        if not url.startswith(f"{partner.fhir_base}/"):
            raise PartnerRejected(
                f"partner '{partner.id}' pointed us at a URL outside its registered FHIR base; "
                "no member data or token is sent there"
            )
        headers = {
            "X-Request-ID": idempotency_key,
            "Idempotency-Key": idempotency_key,
            **(asked.headers or {}),
        }
        authorization = self._tokens.authorization(partner)
        if authorization is not None:
            headers["Authorization"] = authorization
        content = None
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
            content = orjson.dumps(body)
        started = time.perf_counter()
        request = self._client.build_request(
            method,
            url,
            headers=headers,
            content=content,
            timeout=httpx.Timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        cap = limit or self._caps.answer
        try:
            response = send_counted(self._client, request, partner, cap)
        except AnswerTooLarge as exc:
            logger.warning("partner answer too large", extra={"partner_id": partner.id})
            setting = "PARTNER_MAX_FILE_BYTES" if limit else "PARTNER_MAX_ANSWER_BYTES"
            raise too_large(f"partner '{partner.id}'", exc.limit, setting) from exc
        except AddressRefused as exc:
            logger.warning("partner address refused", extra={"partner_id": partner.id})
            raise refused_address(f"partner '{partner.id}'", exc) from exc
        except httpx.HTTPError as exc:
            logger.warning(
                "partner unreachable",
                extra={"partner_id": partner.id, "error_type": type(exc).__name__},
            )
            raise PartnerUnavailable(
                f"partner '{partner.id}' is unreachable ({type(exc).__name__})"
            ) from exc
        logger.info(
            "partner call",
            extra={
                "partner_id": partner.id,
                "method": method,
                "status": response.status_code,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return _answer_of(partner, response)

    def member_match(
        self,
        partner: Partner,
        parameters: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> MemberMatchResult:
        response = self._send(
            partner,
            _Request(
                "POST",
                f"{partner.fhir_base}/Patient/$member-match",
                idempotency_key=idempotency_key,
                body=parameters,
                timeout=timeout,
            ),
        )
        if response.status_code == 422:
            issue_codes = _outcome_codes(response)
            text = _outcome_text(response)
            if "multiple-matches" in issue_codes:
                raise AmbiguousMatch(text)
            if "not-found" in issue_codes:
                raise NoMatch(text)
            if _coded(response, codes.MEMBER_MATCH_OUTCOME) == "review":
                raise MatchUnderReview(text)
            raise ConsentDenied(
                text, reason=_consent_reason(response) or ExchangeReason.PARTNER_REFUSED.value
            )
        if response.status_code != 200:
            raise PartnerRejected(
                f"partner '{partner.id}' rejected $member-match: {_outcome_text(response)}",
                status=response.status_code,
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise PartnerRejected(
                "the partner's $member-match response is not JSON", status=response.status_code
            ) from exc
        return parse_member_match_response(body)

    def probe(self, partner: Partner, *, timeout: float) -> ProbeAnswer:
        """GET the partner's CapabilityStatement without a token (a token endpoint that is
        down is not the endpoint): any answer but a 5xx or 429 is an endpoint that is up.
        The answer's body is not read past the document cap, nor kept."""
        request = self._client.build_request(
            "GET",
            f"{partner.fhir_base}/metadata",
            headers={"X-Request-ID": "breaker-probe"},
            timeout=httpx.Timeout(timeout),
        )
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            status = send_counted(self._client, request, partner, self._caps.document).status_code
        except AnswerTooLarge:
            status = 200  # it answered, at length
        except (AddressRefused, httpx.HTTPError) as exc:
            error = type(exc).__name__
        answered = status is not None and status < 500 and status != 429
        latency = round((time.perf_counter() - started) * 1000)
        return ProbeAnswer(answered, status, error, latency)

    def check_token(self, partner: Partner) -> ProbeAnswer | None:
        """Ask the partner's token endpoint for a new token, as a scheduled check does
        (kept for the next call); None when we ask it for none. ``status`` 200 when a
        token came; a refusal of our credentials is an answer (``error`` "refused")."""
        if partner.client_id is None:
            return None
        started = time.perf_counter()
        status: int | None = 200
        error: str | None = None
        answered = True
        try:
            self._tokens.renew(partner)
        except PartnerAuthRejected as exc:
            status, error = exc.status, "refused"
        except PartnerRejected as exc:  # it answered, with no token in it
            status, error = exc.status, type(exc).__name__
        except (PartnerUnavailable, AddressRefused, httpx.HTTPError) as exc:
            status, error = getattr(exc, "status", None), type(exc).__name__
            answered = False
        latency = round((time.perf_counter() - started) * 1000)
        return ProbeAnswer(answered, status, error, latency)

    def kick_off(
        self, partner: Partner, path: str, body: dict[str, Any], *, idempotency_key: str
    ) -> str:
        """POST a Bulk Data kick-off (``Prefer: respond-async``) under the partner's base;
        the status URL its 202 names."""
        operation = path.rsplit("/", 1)[-1]
        response = self._send(
            partner,
            _Request(
                "POST",
                f"{partner.fhir_base}/{path}",
                idempotency_key=idempotency_key,
                body=body,
                headers={"Prefer": "respond-async"},
            ),
        )
        location = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise PartnerRejected(
                f"partner '{partner.id}' did not accept {operation} "
                f"(HTTP {response.status_code}): {_outcome_text(response)}",
                status=response.status_code,
            )
        return str(location)

    def poll(self, partner: Partner, status_url: str, *, idempotency_key: str) -> BulkStatus:
        """A Bulk Data status request: the manifest once the job is done."""
        response = self._send(
            partner,
            _Request(
                "GET",
                status_url,
                idempotency_key=idempotency_key,
                headers={"Accept": "application/json"},
            ),
        )
        if response.status_code == 202:
            return BulkStatus(
                None,
                retry_after_seconds(response.headers.get("Retry-After"), now=utcnow()),
                response.headers.get("X-Progress"),
            )
        if response.status_code != 200:
            raise PartnerRejected(
                f"partner '{partner.id}' answered a status request with HTTP "
                f"{response.status_code}: {_outcome_text(response)}",
                status=response.status_code,
            )
        try:
            manifest = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise PartnerRejected("the partner's Bulk Data manifest is not JSON") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
            raise PartnerRejected("the partner's Bulk Data manifest has no output list")
        return BulkStatus(manifest)

    def download(self, partner: Partner, url: str, *, idempotency_key: str) -> bytes:
        """One NDJSON file a manifest listed (it must be under the partner's base)."""
        response = self._send(
            partner,
            _Request(
                "GET",
                url,
                idempotency_key=idempotency_key,
                headers={"Accept": "application/fhir+ndjson"},
                limit=self._caps.file,
            ),
        )
        if response.status_code != 200:
            raise PartnerRejected(
                f"partner '{partner.id}' answered a file request with HTTP "
                f"{response.status_code}: {_outcome_text(response)}",
                status=response.status_code,
            )
        return response.content

    def find_member(
        self,
        partner: Partner,
        identifier: tuple[str | None, str],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> str:
        """The Patient a ``$member-match`` identifier names, by ``Patient?identifier=``:
        what HRex 1.0.0 partners (no ``MemberId``) expect next. NoMatch or AmbiguousMatch
        unless the search finds exactly one."""
        system, value = identifier
        token = f"{system}|{value}" if system else value
        url = f"{partner.fhir_base}/Patient?{urlencode({'identifier': token})}"
        response = self._send(
            partner, _Request("GET", url, idempotency_key=idempotency_key, timeout=timeout)
        )
        if response.status_code != 200:
            raise PartnerRejected(
                f"partner '{partner.id}' rejected the Patient search for the matched member: "
                f"{_outcome_text(response)}",
                status=response.status_code,
            )
        page = _bundle_page(response, partner, 1, "the Patient search")
        ids = {
            (entry.get("resource") or {}).get("id")
            for entry in page.get("entry") or []
            if isinstance(entry, dict)
            and (entry.get("search") or {}).get("mode", "match") == "match"
            and (entry.get("resource") or {}).get("resourceType") == "Patient"
        }
        if not ids:
            raise NoMatch(f"partner '{partner.id}' finds no Patient with the identifier it matched")
        if len(ids) > 1:
            raise AmbiguousMatch(
                f"partner '{partner.id}' finds {len(ids)} Patients with the identifier it matched"
            )
        (found,) = ids
        if not isinstance(found, str) or not ID_PATTERN.match(found):
            raise PartnerRejected(f"partner '{partner.id}' returned a Patient without a valid id")
        return f"Patient/{found}"

    def everything(self, partner: Partner, read: RecordRead) -> Retrieved:
        """``$everything``, following ``next`` to the end: one Bundle of every page's
        entries; ``since``: only what changed after it (``_since``). A next link off
        the partner's registered base, a page that is not a Bundle, too many pages, or
        pages that end short of the ``total`` the partner announced fail the call. A
        later page that the partner cannot give now (down, 5xx, 429) fails it too, to be
        retried, but on the last attempt (``keep_partial``) ends the record there: what
        was read, with a completeness outcome naming the page, so the exchange ends
        ``partial`` and asking again may complete it (ids by source identity: nothing
        is kept twice)."""
        relative = _member_on_base(partner, read.member_ref)
        url = f"{partner.fhir_base}/{relative}/$everything"
        if read.since is not None:
            url += "?" + urlencode({"_since": utc_iso(read.since)})
        pages = self._pages(partner, url, "$everything", read)
        logger.info(
            "partner $everything received",
            extra={
                "partner_id": partner.id,
                "pages": len(pages.sizes),
                "entries": len(pages.entries),
            },
        )
        if len(pages.sizes) == 1 and pages.missing is None:  # as sent: nothing to merge
            return Retrieved(pages.first_content, pages.sizes)
        merged = {k: v for k, v in pages.first.items() if k != "link"}
        merged["entry"] = pages.entries
        if pages.missing is not None:
            merged["entry"] = [*pages.entries, outcome_entry([pages.missing])]
        return Retrieved(orjson.dumps(merged), pages.sizes)

    def search_record(self, partner: Partner, read: RecordRead, types: Sequence[str]) -> Retrieved:
        """The member's record read by searches, for a partner without ``$everything``:
        the Patient by ``_id``, then each of ``types`` by ``patient``, each with the
        Provenance that targets what it finds, every page followed; one searchset Bundle
        of them all, each resource once. Any search refused fails the call: nothing is
        kept of part of a record."""
        member = _member_on_base(partner, read.member_ref).removeprefix("Patient/")
        searches = [("Patient", "_id"), *((t, "patient") for t in types if t != "Patient")]
        entries: list[Any] = []
        sizes: list[int] = []
        missing: list[Gap] = []
        seen: set[tuple[Any, Any]] = set()
        for resource_type, parameter in searches:
            query = urlencode({parameter: member, "_revinclude": "Provenance:target"})
            url = f"{partner.fhir_base}/{resource_type}?{query}"
            pages = self._pages(partner, url, f"{resource_type} search", read)
            for entry in pages.entries:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                key = (resource or {}).get("resourceType"), (resource or {}).get("id")
                if key not in seen:
                    seen.add(key)
                    entries.append(entry)
            sizes.extend(pages.sizes)
            if pages.missing is not None:  # the type's later pages: named, not dropped
                missing.append(replace(pages.missing, types=(resource_type,)))
        logger.info(
            "partner record read by searches",
            extra={"partner_id": partner.id, "searches": len(searches), "entries": len(entries)},
        )
        if missing:
            entries.append(outcome_entry(missing))
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        return Retrieved(orjson.dumps(bundle), tuple(sizes))

    def _pages(self, partner: Partner, url: str, what: str, asked: RecordRead) -> _Pages:
        """Every page of a searchset from ``url``, ``next`` followed to the end (within
        the partner's base, at most ``MAX_EVERYTHING_PAGES``, as many matches as the
        first page's ``total`` announced)."""
        first: dict[str, Any] | None = None
        first_content = b""
        entries: list[Any] = []
        sizes: list[int] = []
        read = 0  # bytes of every page so far
        missing: Gap | None = None
        next_url: str | None = url
        while next_url is not None:
            if len(sizes) == MAX_EVERYTHING_PAGES:
                raise PartnerRejected(
                    f"partner '{partner.id}' {what} has more than "
                    f"{MAX_EVERYTHING_PAGES} pages; stopped rather than import part of it"
                )
            try:
                response = self._send(
                    partner,
                    _Request(
                        "GET",
                        next_url,
                        idempotency_key=asked.idempotency_key,
                        timeout=asked.timeout,
                    ),
                )
            except PartnerUnavailable as exc:
                if first is None or not asked.keep_partial:
                    raise
                missing = _missing_page(partner, what, len(sizes) + 1, exc.text)
                break
            if (
                asked.keep_partial
                and first is not None
                and (response.status_code == 429 or response.status_code >= 500)
            ):
                reason = f"HTTP {response.status_code}"
                missing = _missing_page(partner, what, len(sizes) + 1, reason)
                break
            if response.status_code != 200:
                raise PartnerRejected(
                    f"partner '{partner.id}' rejected {what} (page {len(sizes) + 1}): "
                    f"{_outcome_text(response)}",
                    status=response.status_code,
                )
            read += len(response.content)
            if read > self._caps.record:
                raise too_large(
                    f"partner '{partner.id}' {what}", self._caps.record, "PARTNER_MAX_RECORD_BYTES"
                )
            page = _bundle_page(response, partner, len(sizes) + 1, what)
            if first is None:
                first, first_content = page, response.content
            page_entries = page.get("entry") or []
            entries.extend(page_entries)
            sizes.append(len(page_entries))
            next_url = _next_link(page, partner)
        assert first is not None
        matches = sum(1 for e in entries if (e.get("search") or {}).get("mode", "match") == "match")
        total = first.get("total")
        if missing is None and len(sizes) > 1 and isinstance(total, int) and matches < total:
            raise PartnerRejected(
                f"partner '{partner.id}' {what} pages ended with {matches} of the "
                f"{total} resources it announced; nothing was imported"
            )
        return _Pages(first, first_content, entries, tuple(sizes), missing)


@dataclass(frozen=True)
class _Pages:
    first: dict[str, Any]
    first_content: bytes
    entries: list[Any]
    sizes: tuple[int, ...]
    missing: Gap | None = None  # the page the partner could not give now, and why


def _missing_page(partner: Partner, what: str, page: int, reason: str) -> Gap:
    logger.warning(
        "partner page missing", extra={"partner_id": partner.id, "page": page, "reason": reason}
    )
    return Gap(
        source=f"{partner.id} {what} page {page}",
        types=("unknown",),
        code="source-unavailable",
        text=f"partner '{partner.id}' could not give page {page} of {what} ({reason}); "
        "the pages before it were kept",
        retry_may_help=True,
    )


def _member_on_base(partner: Partner, member_ref: str) -> str:
    """``Patient/{id}`` of the member on one of the partner's registered endpoints (an
    exchange may have matched at another than it reads at); anything else is refused
    before a call: no member data or token goes elsewhere."""
    bases = {partner.fhir_base, *(endpoint.base for endpoint in partner.endpoints)}
    on = [base for base in bases if member_ref.startswith(f"{base}/")]
    relative = member_ref.removeprefix(f"{max(on, key=len)}/") if on else member_ref
    if not _PATIENT_REFERENCE.match(relative):
        raise PartnerRejected(
            f"partner '{partner.id}' returned a member reference that is not a Patient on "
            "its registered FHIR base; no member data or token is sent there"
        )
    return relative


MAX_EVERYTHING_PAGES = 10_000  # at a thousand a page, ten million resources


def _bundle_page(
    response: httpx.Response, partner: Partner, number: int, what: str = "$everything"
) -> dict[str, Any]:
    try:
        page = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise PartnerRejected(f"partner '{partner.id}' {what} page {number} is not JSON") from exc
    if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
        raise PartnerRejected(f"partner '{partner.id}' {what} page {number} is not a Bundle")
    if not isinstance(page.get("entry") or [], list):
        raise PartnerRejected(f"partner '{partner.id}' {what} page {number} is malformed")
    return page


def _next_link(page: dict[str, Any], partner: Partner) -> str | None:
    """The page's ``next`` link, absolute; a link off the registered base is refused by
    ``_send`` before anything is sent there."""
    for link in page.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url:
                raise PartnerRejected(f"partner '{partner.id}' sent a next link without a URL")
            if "://" not in url:  # relative to the base, as some servers write it
                url = f"{partner.fhir_base}/{url.lstrip('/')}"
            return url
    return None
