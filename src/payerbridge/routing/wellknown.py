"""HRex endpoint discovery (pure, ADR 0061): the ``[base]/.well-known/davinci-configuration``
document we publish, and the reading of a partner's.

Its wire form (HRex 1.2 ``HRexWellknownDefinition``, ``Binary-Wellknown``) is one JSON
object: ``identifier`` (the payer's, ``{"system", "value"}``) and ``endpoints``, a map of
endpoint codes to URIs; HRex 1.2 (FHIR-53221) adds version-specific codes
``<code>#<version>``. The codes are an extensible binding, so besides the HRex ones we
publish ``smart_configuration`` and ``udap_metadata``.

A partner's document says where we are to send member data: a reading that is not a
clean document, or that names an endpoint on another origin than the document's own
location, is refused whole, naming every problem, and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payerbridge.errors import InvalidInput, Issue, UnprocessableRequest
from payerbridge.net.origins import UrlFault, origin, same_origin, url_fault
from payerbridge.npi import is_valid_npi
from payerbridge.routing.endpoints import MAX_ENDPOINTS, PartnerEndpoint

__all__ = [
    "MAX_WELLKNOWN_BYTES",
    "NPI_SYSTEM",
    "WELLKNOWN_EXTENSION",
    "WELLKNOWN_PATH",
    "WellknownReading",
    "coverage_wellknown",
    "document_etag",
    "endpoints_replaced",
    "is_refresh_due",
    "location_issues",
    "our_wellknown",
    "read_wellknown",
    "wellknown_location",
    "wellknown_locations",
    "wellknown_source",
]

WELLKNOWN_PATH = "/.well-known/davinci-configuration"
WELLKNOWN_EXTENSION = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/extension-CoverageDavinciWellknownLocation"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
PAYER_KEY = "davinci_pdex_payer_endpoint"
PROVIDER_KEY = "davinci_pdex_provider_endpoint"
# Local codes (the binding is extensible): where our security metadata is.
SMART_KEY = "smart_configuration"
UDAP_KEY = "udap_metadata"
# Where member data or our assertions may go: these must be on the document's origin.
_CALLED_KEYS = frozenset({PAYER_KEY, PROVIDER_KEY, SMART_KEY, UDAP_KEY})

# A payer's endpoints, versions and a few local codes fit in far less.
MAX_WELLKNOWN_BYTES = 64 * 1024
MAX_WELLKNOWN_KEYS = 64
_SOURCE_PREFIX = "well-known "
_KEY = re.compile(r"^[A-Za-z0-9_\-.]{1,100}$")
_VERSION = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,4}){0,2}$")


@dataclass(frozen=True)
class WellknownReading:
    """What a partner's ``.well-known`` says that we use: its identifier, its payer
    endpoints (newest version first) and, as information, its Provider Access endpoint
    and security metadata locations."""

    location: str
    identifier_system: str
    identifier_value: str
    endpoints: tuple[PartnerEndpoint, ...]
    others: Mapping[str, str]  # provider endpoint, SMART and UDAP locations, by code

    @property
    def npi(self) -> str | None:
        """The payer's NPI, when its identifier is one (a valid check digit)."""
        if self.identifier_system == NPI_SYSTEM and is_valid_npi(self.identifier_value):
            return self.identifier_value
        return None


def wellknown_location(base_url: str) -> str:
    """Where a server whose external base is ``base_url`` publishes its document."""
    return f"{base_url.rstrip('/')}{WELLKNOWN_PATH}"


def wellknown_source(location: str) -> str:
    """The ``source`` of endpoints read from the document at ``location``."""
    return f"{_SOURCE_PREFIX}{location}"


def wellknown_locations(endpoints: Sequence[PartnerEndpoint]) -> list[str]:
    """The davinci-configuration documents ``endpoints`` were read from, in order."""
    sources = (e.source for e in endpoints if e.source.startswith(_SOURCE_PREFIX))
    return list(dict.fromkeys(source.removeprefix(_SOURCE_PREFIX) for source in sources))


def is_refresh_due(last_read: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether a partner read at ``last_read`` (None: never) is due for another reading."""
    return last_read is None or now - last_read >= interval


def our_wellknown(npi: str, base_url: str, pdex_version: str | None) -> dict[str, Any]:
    """Ours: our NPI, our FHIR base for payer-to-payer (also under the PDex version we
    declare, as ``major.minor``) and Provider Access, and our SMART and UDAP metadata."""
    fhir_base = f"{base_url}/fhir"
    endpoints = {PAYER_KEY: fhir_base}
    if pdex_version:
        endpoints[f"{PAYER_KEY}#{_major_minor(pdex_version)}"] = fhir_base
    endpoints[PROVIDER_KEY] = fhir_base  # Provider Access runs on the same base (ADR 0059)
    endpoints[SMART_KEY] = f"{fhir_base}/.well-known/smart-configuration"
    endpoints[UDAP_KEY] = f"{fhir_base}/.well-known/udap"
    return {"identifier": {"system": NPI_SYSTEM, "value": npi}, "endpoints": endpoints}


def document_etag(body: bytes, version: str) -> str:
    """A strong ETag of a served document and the software that served it."""
    digest = hashlib.sha256(version.encode() + b"\0" + body).hexdigest()
    return f'"{digest[:32]}"'


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def read_wellknown(document: bytes, location: str) -> WellknownReading:
    """The reading of the document found at ``location``; UnprocessableRequest naming
    every problem when it is not one we can rely on."""
    issues = location_issues(location)
    if issues:
        raise _refused(location, issues)
    if len(document) > MAX_WELLKNOWN_BYTES:
        too_large = Issue(f"it is larger than {MAX_WELLKNOWN_BYTES} bytes", None, "too-costly")
        raise _refused(location, [too_large])
    parsed, problem = _parsed(document)
    if problem is not None:
        raise _refused(location, [Issue(problem)])
    if not isinstance(parsed, dict):
        raise _refused(location, [Issue("it is not a JSON object", "$")])
    system, value = _identifier(parsed.get("identifier"), issues)
    given = parsed.get("endpoints")
    endpoints = given if isinstance(given, dict) and len(given) <= MAX_WELLKNOWN_KEYS else {}
    if not isinstance(given, dict):
        text = "endpoints must be an object of codes to URLs"
        issues.append(Issue(text, "endpoints", "required"))
    elif len(given) > MAX_WELLKNOWN_KEYS:
        text = f"endpoints has more than {MAX_WELLKNOWN_KEYS} codes"
        issues.append(Issue(text, "endpoints", "too-costly"))
    found = _endpoints(endpoints, location, issues)
    payer = {key: url for key, url in found.items() if key[0] == PAYER_KEY}
    if isinstance(given, dict) and not any(k.partition("#")[0] == PAYER_KEY for k in given):
        text = f"it names no {PAYER_KEY}: nowhere to exchange with"
        issues.append(Issue(text, "endpoints", "required"))
    elif len({url.rstrip("/") for url in payer.values()}) > MAX_ENDPOINTS:
        text = f"it names more than {MAX_ENDPOINTS} payer endpoints"
        issues.append(Issue(text, "endpoints", "too-costly"))
    if issues:
        raise _refused(location, issues)
    others = {key: url for (key, version), url in found.items() if key != PAYER_KEY and not version}
    return WellknownReading(
        location,
        system,
        value,
        _payer_endpoints(payer, wellknown_source(location)),
        {key: url for key, url in others.items() if key in _CALLED_KEYS},
    )


def location_issues(location: str) -> list[Issue]:
    """What is wrong with a davinci-configuration location as given."""
    fault = url_fault(location)
    if fault is UrlFault.NOT_HTTP:
        return [Issue("the location must be an absolute http(s) URL", "wellknown_url")]
    if fault is UrlFault.CREDENTIALS:
        return [Issue("the location must not carry user:password@", "wellknown_url", "security")]
    return []


def _parsed(document: bytes) -> tuple[Any, str | None]:
    """The JSON value, or why there is none (duplicate names are refused: which one a
    reader keeps is its own choice)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError("a name is given twice in one object")
        return dict(pairs)

    try:
        return json.loads(document.decode("utf-8"), object_pairs_hook=unique), None
    except UnicodeDecodeError:
        return None, "it is not UTF-8 text"
    except RecursionError:
        return None, "it is nested too deeply"
    except ValueError as exc:
        said = "a name is given twice" if "twice" in str(exc) else "it is not JSON"
        return None, said


def _identifier(identifier: Any, issues: list[Issue]) -> tuple[str, str]:
    if not isinstance(identifier, dict):
        text = "identifier is required: an object with system and value"
        issues.append(Issue(text, "identifier", "required"))
        return "", ""
    found = []
    for name in ("system", "value"):
        value = identifier.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            text = f"identifier.{name} must be a string (1-200 characters)"
            issues.append(Issue(text, f"identifier.{name}"))
            value = ""
        found.append(value)
    return found[0], found[1]


def _endpoints(
    endpoints: Mapping[str, Any], location: str, issues: list[Issue]
) -> dict[tuple[str, str | None], str]:
    """(code, version or None) → URL, the problems of each entry added to ``issues``."""
    found: dict[tuple[str, str | None], str] = {}
    for key, url in endpoints.items():
        where = f"endpoints[{json.dumps(key[:100])}]"
        code, _, version = key.partition("#")
        if not _KEY.match(code) or (version and not _VERSION.match(version)):
            text = "a code is letters, digits and _ (then #version, e.g. #2.2)"
            issues.append(Issue(text, where))
            continue
        problem = _url_problem(url, location, code in _CALLED_KEYS)
        if problem is not None:
            issues.append(Issue(problem, where, "security" if "origin" in problem else None))
            continue
        found[(code, version or None)] = url
    return found


def _url_problem(url: Any, location: str, called: bool) -> str | None:
    if not isinstance(url, str) or len(url) > 500:
        return "the value must be a URL (a string of at most 500 characters)"
    fault = url_fault(url)
    if fault is UrlFault.NOT_HTTP:
        return "the value must be an absolute http(s) URL"
    if fault is UrlFault.CREDENTIALS:
        return "the value must not carry user:password@ (it would go out as Basic auth)"
    if called and not same_origin(url, location):
        return (
            f"{url[:200]} is on another origin than the document; member data and our "
            "assertions go only to the origin the document was read from"
        )
    return None


def _payer_endpoints(
    payer: Mapping[tuple[str, str | None], str], source: str
) -> tuple[PartnerEndpoint, ...]:
    """One endpoint per URL with every version it was named under, newest first; those
    named without a version after them."""
    versions: dict[str, list[str]] = {}
    for (_, version), url in payer.items():
        listed = versions.setdefault(url.rstrip("/"), [])
        if version is not None and version not in listed:
            listed.append(version)
    ordered = sorted(
        versions.items(),
        key=lambda item: max((_version_key(v) for v in item[1]), default=()),
        reverse=True,
    )
    return tuple(
        PartnerEndpoint(
            url,
            priority,
            versions=tuple(sorted(listed, key=_version_key, reverse=True)),
            source=source,
        )
        for priority, (url, listed) in enumerate(ordered)
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def endpoints_replaced(
    kept: Sequence[PartnerEndpoint], reading: WellknownReading
) -> tuple[tuple[PartnerEndpoint, ...], list[str]]:
    """The partner's endpoints with those from ``reading``'s source replaced by what it
    now says, and what changed. The operator's and a directory's stay; a URL one of them
    names already keeps their entry."""
    source = wellknown_source(reading.location)
    others = tuple(e for e in kept if e.source != source)
    named = {e.base for e in others}
    before = {e.base: e for e in kept if e.source == source}
    after = {e.base: e for e in reading.endpoints if e.base not in named}
    changes = [f"added {url}" for url in after if url not in before]
    changes += [f"removed {url}" for url in before if url not in after]
    changes += [
        f"versions of {url}: {', '.join(before[url].versions) or 'none'} → "
        f"{', '.join(after[url].versions) or 'none'}"
        for url in after
        if url in before and before[url].versions != after[url].versions
    ]
    return (*others, *after.values()), changes


def coverage_wellknown(coverage: Any) -> str:
    """The ``.well-known`` location a member's Coverage carries (HRex
    ``extension-CoverageDavinciWellknownLocation``); UnprocessableRequest when none."""
    if not isinstance(coverage, dict) or coverage.get("resourceType") != "Coverage":
        text = "coverage must be a FHIR Coverage resource"
        raise InvalidInput(text, issues=[Issue(text, "coverage", "invalid")])
    for extension in coverage.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == WELLKNOWN_EXTENSION:
            value = extension.get("valueUri")
            if isinstance(value, str) and origin(value) is not None:
                return value
            text = "the Coverage's davinci-configuration location is not an absolute http(s) URL"
            raise UnprocessableRequest(text, issues=[Issue(text, "Coverage.extension", "invalid")])
    text = f"the Coverage carries no {WELLKNOWN_EXTENSION.rsplit('/', 1)[1]} extension"
    raise UnprocessableRequest(text, issues=[Issue(text, "Coverage.extension", "required")])


def _refused(location: str, issues: list[Issue]) -> UnprocessableRequest:
    named = location[:200]
    text = f"the davinci-configuration document at {named} cannot be used; nothing was changed"
    return UnprocessableRequest(
        text,
        issues=[Issue(f"{i.text} ({named})", i.expression, i.code or "invalid") for i in issues],
    )
