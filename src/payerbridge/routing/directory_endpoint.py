"""One NDH ``Endpoint`` of a directory bundle read as a partner's endpoint (pure): is it
for the payer-to-payer exchange, and if so where, in what order, in what state and under
which trust framework. ``directory_bundle`` ties endpoints to their organizations.

NDH (FAST National Directory, ``http://hl7.org/fhir/us/ndh``) and the PDex mTLS bundle
(which ports NDH's extensions to ``http://hl7.org/fhir/us/davinci-pdex``) say the use case
with ``base-ext-endpoint-usecase`` (``endpointUsecasetype``, from
``NdhFhirEndpointUseCaseCS``: ``payerToPayer``), the trust framework with
``base-ext-trustFramework`` (``trustFrameworkType``) and ``base-ext-dynamicRegistration``
(``trustProfile``: ``udap`` or ``smart``), the order among endpoints that carry the same
content with ``base-ext-endpoint-rank`` and the guides served with ``base-ext-fhir-ig``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from payerbridge.errors import Issue
from payerbridge.net.origins import UrlFault, url_fault
from payerbridge.routing.endpoints import EndpointStatus, PartnerEndpoint
from payerbridge.timestamps import instant_of

__all__ = ["DirectoryEndpoint", "is_payer_to_payer", "read_endpoint"]

_NAMESPACES = ("http://hl7.org/fhir/us/ndh", "http://hl7.org/fhir/us/davinci-pdex")


def _extension_urls(name: str) -> frozenset[str]:
    return frozenset(f"{ns}/StructureDefinition/{name}" for ns in _NAMESPACES)


USE_CASE = _extension_urls("base-ext-endpoint-usecase")
TRUST_FRAMEWORK = _extension_urls("base-ext-trustFramework")
DYNAMIC_REGISTRATION = _extension_urls("base-ext-dynamicRegistration")
RANK = _extension_urls("base-ext-endpoint-rank")
FHIR_IG = _extension_urls("base-ext-fhir-ig")
USE_CASE_SYSTEMS = frozenset(f"{ns}/CodeSystem/NdhFhirEndpointUseCaseCS" for ns in _NAMESPACES)
PAYER_TO_PAYER = "payerToPayer"
CONNECTION_TYPES = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
FHIR_REST = "hl7-fhir-rest"
# Endpoint.status (R4) that keep an endpoint listed but not called.
_OFF_STATUSES = frozenset({"suspended", "error", "off", "entered-in-error", "test"})
_FHIR_JSON = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
MAX_URL = 500  # as POST /partners takes it
MAX_PRIORITY = 1000


@dataclass(frozen=True)
class DirectoryEndpoint:
    """An endpoint a payer-to-payer Endpoint entry gives: ``endpoint`` (its priority
    still the rank, when one was given), whether its trust framework is UDAP, and where
    it was read (``Bundle.entry[n]``)."""

    endpoint: PartnerEndpoint
    udap: bool
    entry: str
    ranked: bool  # its priority came from base-ext-endpoint-rank


def _squashed(text: object) -> str:
    """Letters and digits only, lower-cased: "Payer to Payer", "payer-to-payer" and
    "payerToPayer" read alike."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def _extensions(resource: Mapping[str, Any], urls: frozenset[str]) -> Iterator[Mapping[str, Any]]:
    for extension in resource.get("extension") or ():
        if isinstance(extension, Mapping) and extension.get("url") in urls:
            yield extension


def _codings(extension: Mapping[str, Any], slice_name: str) -> Iterator[Mapping[str, Any]]:
    """The codings of the sub-extension ``slice_name``'s CodeableConcept."""
    for inner in extension.get("extension") or ():
        if not isinstance(inner, Mapping) or inner.get("url") != slice_name:
            continue
        concept = inner.get("valueCodeableConcept")
        if isinstance(concept, Mapping):
            yield from (c for c in concept.get("coding") or () if isinstance(c, Mapping))


def is_payer_to_payer(endpoint: Mapping[str, Any]) -> bool:
    """Whether the Endpoint names the payer-to-payer use case: ``payerToPayer`` of
    NdhFhirEndpointUseCaseCS, or, under another system, a code or display that says
    payer to payer (directories that predate the code system); and is a FHIR REST one."""
    said = any(
        _names_payer_to_payer(coding)
        for extension in _extensions(endpoint, USE_CASE)
        for coding in _codings(extension, "endpointUsecasetype")
    )
    return said and _is_fhir_rest(endpoint.get("connectionType"))


def _names_payer_to_payer(coding: Mapping[str, Any]) -> bool:
    if coding.get("system") in USE_CASE_SYSTEMS and coding.get("code") == PAYER_TO_PAYER:
        return True
    said = (_squashed(coding.get("code", "")), _squashed(coding.get("display", "")))
    return _squashed(PAYER_TO_PAYER) in said


def _is_fhir_rest(connection: object) -> bool:
    """R4's Endpoint.connectionType is a Coding; later releases make it a list of
    CodeableConcepts: either names hl7-fhir-rest."""
    codings: list[Any] = []
    if isinstance(connection, Mapping):
        codings = [connection, *(connection.get("coding") or ())]
    elif isinstance(connection, list):
        for concept in connection:
            if isinstance(concept, Mapping):
                codings.extend(concept.get("coding") or ())
    return any(
        isinstance(c, Mapping)
        and c.get("system") == CONNECTION_TYPES
        and c.get("code") == FHIR_REST
        for c in codings
    )


def read_endpoint(
    endpoint: Mapping[str, Any], where: str, *, source: str, now: datetime
) -> DirectoryEndpoint | list[Issue]:
    """A payer-to-payer Endpoint as a partner's endpoint, or what is wrong with it, each
    issue naming ``where`` (``Bundle.entry[n].resource``). ``now`` decides its period."""
    issues: list[Issue] = []
    address = endpoint.get("address")
    if not isinstance(address, str) or not address.strip():
        issues.append(Issue("address is required", f"{where}.address", "required"))
    else:
        issues.extend(_address_issues(address.strip(), f"{where}.address"))
    status, note = _status(endpoint.get("status"), f"{where}.status", issues)
    period_note = _outside_period(endpoint.get("period"), now, f"{where}.period", issues)
    rank = _rank(endpoint, where, issues)
    if issues:
        return issues
    if status is EndpointStatus.ACTIVE and period_note is not None:
        status, note = EndpointStatus.OFF, period_note
    mime = [m for m in endpoint.get("payloadMimeType") or () if isinstance(m, str)]
    if status is EndpointStatus.ACTIVE and mime and not _FHIR_JSON.intersection(mime):
        status, note = EndpointStatus.OFF, "the directory lists no FHIR JSON payload for it"
    assert isinstance(address, str)
    found = PartnerEndpoint(
        address.strip(),
        rank or 0,
        status,
        _versions(endpoint),
        source,
        note,
    )
    return DirectoryEndpoint(found, _is_udap(endpoint), where, rank is not None)


def _address_issues(address: str, where: str) -> list[Issue]:
    if len(address) > MAX_URL:
        return [Issue(f"address is longer than {MAX_URL} characters", where, "value")]
    fault = url_fault(address)
    if fault is UrlFault.NOT_HTTP:
        return [Issue("address must be an absolute http(s) URL of a FHIR base", where, "value")]
    if fault is UrlFault.CREDENTIALS:
        text = "address must not carry a user name or password (user:password@)"
        return [Issue(text, where, "security")]
    parsed = urlparse(address)
    if parsed.query or parsed.fragment:
        return [Issue("address must be a FHIR base, without a query or fragment", where, "value")]
    return []


def _status(value: object, where: str, issues: list[Issue]) -> tuple[EndpointStatus, str | None]:
    if value == "active":
        return EndpointStatus.ACTIVE, None
    if value in _OFF_STATUSES:
        return EndpointStatus.OFF, f"the directory says its status is '{value}'"
    text = "status must be active, suspended, error, off, entered-in-error or test"
    issues.append(Issue(text, where, "required" if value is None else "code-invalid"))
    return EndpointStatus.OFF, None


def _rank(endpoint: Mapping[str, Any], where: str, issues: list[Issue]) -> int | None:
    """The NDH rank (a positiveInt: 1 first), kept as the endpoint's priority."""
    for extension in _extensions(endpoint, RANK):
        rank = extension.get("valuePositiveInt")
        if isinstance(rank, int) and not isinstance(rank, bool) and 1 <= rank <= MAX_PRIORITY:
            return rank
        text = f"the endpoint rank must be a positive integer up to {MAX_PRIORITY}"
        issues.append(Issue(text, f"{where}.extension", "value"))
    return None


def _bounds(text: object) -> tuple[datetime, datetime] | None:
    """The instants a FHIR dateTime covers ([start, end)): a year, a month, a day or an
    instant; None when it is none of these."""
    if not isinstance(text, str):
        return None
    instant = instant_of(text)
    if instant is not None:
        return instant, instant
    try:
        if re.fullmatch(r"\d{4}", text):
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            return start, datetime(int(text) + 1, 1, 1, tzinfo=UTC)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            year, month = int(text[:4]), int(text[5:])
            start = datetime(year, month, 1, tzinfo=UTC)
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start, following
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start, start + timedelta(days=1)
    except ValueError:
        return None
    return None


def _outside_period(period: object, now: datetime, where: str, issues: list[Issue]) -> str | None:
    """Why ``now`` is outside the Endpoint's period, if it is (a day counts whole)."""
    if period is None:
        return None
    if not isinstance(period, Mapping):
        issues.append(Issue("period must be a Period", where, "structure"))
        return None
    found: dict[str, tuple[datetime, datetime]] = {}
    for end in ("start", "end"):
        if period.get(end) is None:
            continue
        bounds = _bounds(period[end])
        if bounds is None:
            issues.append(Issue(f"period.{end} is not a FHIR dateTime", f"{where}.{end}", "value"))
        else:
            found[end] = bounds
    if "start" in found and now < found["start"][0]:
        return f"its period starts {period['start']}"
    if "end" in found and now >= found["end"][1]:
        return f"its period ended {period['end']}"
    return None


def _is_udap(endpoint: Mapping[str, Any]) -> bool:
    """UDAP named as its trust framework or as its dynamic registration's profile."""
    for urls, slice_name in (
        (TRUST_FRAMEWORK, "trustFrameworkType"),
        (DYNAMIC_REGISTRATION, "trustProfile"),
    ):
        for extension in _extensions(endpoint, urls):
            for coding in _codings(extension, slice_name):
                if "udap" in (
                    _squashed(coding.get("code", "")),
                    _squashed(coding.get("display", "")),
                ):
                    return True
    return False


def _versions(endpoint: Mapping[str, Any]) -> tuple[str, ...]:
    """The PDex versions its base-ext-fhir-ig extensions announce, as major.minor."""
    found: list[str] = []
    for extension in _extensions(endpoint, FHIR_IG):
        parts = {
            inner.get("url"): inner.get("valueUri") or inner.get("valueString")
            for inner in extension.get("extension") or ()
            if isinstance(inner, Mapping)
        }
        named = f"{parts.get('ig-publication') or ''} {parts.get('ig-name') or ''}"
        version = parts.get("ig-version")
        if not isinstance(version, str) or not (
            "davinci-pdex" in named or "payerdataexchange" in _squashed(named)
        ):
            continue
        short = ".".join(version.strip().split(".")[:2])[:20]
        if short and short not in found:
            found.append(short)
    return tuple(sorted(found))
