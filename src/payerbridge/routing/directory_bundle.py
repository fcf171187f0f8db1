"""A directory bundle read (pure): the payer organizations of an NDH-style FHIR R4 Bundle
(FAST National Directory, or PDex's ``mtls-bundle``) with their payer-to-payer endpoints,
as the partners they describe. ``directory_import`` compares them with the directory.

An Organization is ours when it is a payer (``organization-type#pay`` or NDH's
``OrgTypeCS#payer``) with at least one payer-to-payer FHIR REST Endpoint, reached by
``Organization.endpoint``, ``Endpoint.managingOrganization`` or an
``OrganizationAffiliation`` naming it (``organization`` or ``participatingOrganization``)
with its ``endpoint``. Everything else (other resource types, other organizations, other
use cases) is counted and passed over. A defect is an ``Issue`` naming its entry
(``Bundle.entry[n]``); an organization with one is not imported (``skipped``), the others
are. A bundle with no organization of ours is refused whole.

A partner's id is the slug of its organization's name (``Acme Health Plan`` →
``acme-health-plan``), or the value of an identifier of ``PARTNER_ID_SYSTEM`` where a
curated bundle gives one: the same organization keeps its partner across imports, and a
changed NPI shows as one (its NPI is what the directory claims, not what names it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from payerbridge.errors import Issue, UnprocessableRequest
from payerbridge.npi import is_valid_npi
from payerbridge.routing.directory_endpoint import (
    DirectoryEndpoint,
    is_payer_to_payer,
    read_endpoint,
)
from payerbridge.routing.endpoints import EndpointStatus, PartnerEndpoint, endpoints_from_json
from payerbridge.types import PartnerId

__all__ = [
    "DirectoryBundle",
    "DirectoryOrganization",
    "Passed",
    "partner_id_of",
    "read_directory_bundle",
]

# Where a curated bundle fixes the partner id an organization maps to (ours, optional).
PARTNER_ID_SYSTEM = "https://payerbridge.dev/fhir/NamingSystem/partner-id"
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")
NPI_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/us-npi", "urn:oid:2.16.840.1.113883.4.6"})
_PAYER_TYPES = frozenset(
    {
        ("http://terminology.hl7.org/CodeSystem/organization-type", "pay"),
        ("http://hl7.org/fhir/us/ndh/CodeSystem/OrgTypeCS", "payer"),
        ("http://hl7.org/fhir/us/davinci-pdex/CodeSystem/OrgTypeCS", "payer"),
    }
)
_TYPES = ("Organization", "Endpoint", "OrganizationAffiliation")
MAX_NAME = 100  # of a directory, as its endpoints' source names it


@dataclass(frozen=True)
class DirectoryOrganization:
    """A payer organization as the directory describes it: the partner it would be."""

    partner_id: PartnerId
    name: str
    npi: str
    endpoints: tuple[PartnerEndpoint, ...]  # its payer-to-payer endpoints, in call order
    udap: bool  # an endpoint names UDAP as its trust framework
    entry: str  # Bundle.entry[n], where it was read

    def to_json(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id,
            "name": self.name,
            "npi": self.npi,
            "endpoints": [e.to_json() for e in self.endpoints],
            "udap": self.udap,
            "entry": self.entry,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DirectoryOrganization:
        return cls(
            PartnerId(data["partner_id"]),
            data["name"],
            data["npi"],
            endpoints_from_json(data["endpoints"]),
            bool(data["udap"]),
            data["entry"],
        )

    @property
    def fingerprint(self) -> str:
        """What the directory says of it, hashed: where it sits in the bundle aside, an
        unchanged entry hashes alike import after import."""
        said = {k: v for k, v in self.to_json().items() if k != "entry"}
        text = json.dumps(said, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Passed:
    """A payer organization with payer-to-payer endpoints that is not imported, and why."""

    entry: str
    why: str
    partner_id: PartnerId | None = None


@dataclass(frozen=True)
class DirectoryBundle:
    directory: str  # its name: Bundle.identifier.value, else the file's
    organizations: tuple[DirectoryOrganization, ...]  # by partner id
    skipped: tuple[Passed, ...] = ()
    not_ours: int = 0  # entries passed over: other types, organizations and use cases
    issues: tuple[Issue, ...] = field(default=())

    @property
    def source(self) -> str:
        """What its endpoints' ``source`` says."""
        return f"directory {self.directory}"


def partner_id_of(name: str, npi: str) -> PartnerId:
    """The partner id an organization maps to: its name's slug (64 characters at most),
    or ``npi-<NPI>`` when its name has no letter or digit."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].rstrip("-")
    return PartnerId(slug or f"npi-{npi}")


def read_directory_bundle(
    document: object, *, fallback_name: str, now: datetime
) -> DirectoryBundle:
    """The payer organizations ``document`` describes, with what was skipped and why;
    UnprocessableRequest when it is no Bundle or describes none. ``now`` decides which
    endpoints are inside their period; ``fallback_name`` names a bundle without an
    identifier (its file's name)."""
    entries = _entries(document)
    assert isinstance(document, Mapping)
    name = _directory_name(document, fallback_name)
    read = _Reading(entries, f"directory {name}", now)
    organizations = read.organizations()
    if not organizations:
        text = (
            "the bundle describes no payer Organization (with a valid NPI) that has a "
            "payer-to-payer FHIR REST Endpoint: nothing to import"
        )
        skipped = [Issue(f"{p.entry}: {p.why}", p.entry, "business-rule") for p in read.skipped]
        raise UnprocessableRequest(text, issues=[*read.issues, *skipped, Issue(text, "Bundle")])
    return DirectoryBundle(
        name,
        tuple(sorted(organizations, key=lambda o: o.partner_id)),
        tuple(sorted(read.skipped, key=lambda p: (p.partner_id or "", p.entry))),
        read.not_ours,
        tuple(read.issues),
    )


def _entries(document: object) -> list[Any]:
    if not isinstance(document, Mapping) or document.get("resourceType") != "Bundle":
        text = "a directory bundle must be a FHIR Bundle (resourceType 'Bundle')"
        raise UnprocessableRequest(text, issues=[Issue(text, "Bundle.resourceType", "invalid")])
    entries = document.get("entry")
    if not isinstance(entries, list) or not entries:
        text = "the bundle has no entry"
        raise UnprocessableRequest(text, issues=[Issue(text, "Bundle.entry", "required")])
    return entries


def _directory_name(document: Mapping[str, Any], fallback: str) -> str:
    identifier = document.get("identifier")
    value = identifier.get("value") if isinstance(identifier, Mapping) else None
    name = value if isinstance(value, str) and value.strip() else fallback
    return " ".join(name.split())[:MAX_NAME] or "bundle"


class _Reading:
    """One pass over a bundle's entries: its resources indexed by reference, the issues
    and skips found on the way."""

    def __init__(self, entries: Sequence[Any], source: str, now: datetime) -> None:
        self.source, self.now = source, now
        self.issues: list[Issue] = []
        self.skipped: list[Passed] = []
        self.resources: dict[int, Mapping[str, Any]] = {}
        self.index: dict[str, int] = {}
        self.not_ours = 0
        for n, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(resource, Mapping):
                self.issues.append(Issue("entry has no resource", f"Bundle.entry[{n}]", "required"))
                continue
            kind = resource.get("resourceType")
            if kind not in _TYPES:
                self.not_ours += 1
                continue
            self.resources[n] = resource
            if isinstance(entry.get("fullUrl"), str):
                self.index[entry["fullUrl"]] = n
            if isinstance(resource.get("id"), str):
                self.index[f"{kind}/{resource['id']}"] = n

    def of_type(self, kind: str) -> list[int]:
        return [n for n, r in self.resources.items() if r.get("resourceType") == kind]

    def resolve(self, reference: object, kind: str) -> int | None:
        """The entry a Reference points to, by fullUrl or by ``Type/id`` (relative, or
        the tail of an absolute or versioned URL), if it is of ``kind``."""
        text = reference.get("reference") if isinstance(reference, Mapping) else None
        if not isinstance(text, str):
            return None
        found = self.index.get(text)
        if found is None:
            parts = text.split("/")
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            found = self.index.get("/".join(parts[-2:])) if len(parts) >= 2 else None
        if found is None or self.resources[found].get("resourceType") != kind:
            return None
        return found

    def organizations(self) -> list[DirectoryOrganization]:
        linked = self._linked_endpoints()
        found: list[DirectoryOrganization] = []
        claimed: set[int] = set()
        for n in self.of_type("Organization"):
            ours = [e for e in linked.get(n, []) if is_payer_to_payer(self.resources[e])]
            if not _is_payer(self.resources[n]) or not ours:
                self.not_ours += 1
                continue
            claimed.update(ours)
            organization = self._organization(n, ours)
            if organization is not None:
                found.append(organization)
        for n in self.of_type("Endpoint"):
            if n in claimed:
                continue
            if is_payer_to_payer(self.resources[n]):
                text = "a payer-to-payer Endpoint that no payer Organization of the bundle names"
                self.issues.append(Issue(text, f"Bundle.entry[{n}]", "business-rule"))
            else:
                self.not_ours += 1
        self.not_ours += len(self.of_type("OrganizationAffiliation"))
        return _unique_ids(found, self.issues, self.skipped)

    def _linked_endpoints(self) -> dict[int, list[int]]:
        """Each Organization's Endpoint entries: those it lists first, in its order, then
        those that name it or reach it through an affiliation, by address (so that the
        bundle's entry order does not matter)."""
        listed: dict[int, list[int]] = {}
        extra: dict[int, set[int]] = {}
        for n in self.of_type("Organization"):
            refs = self.resources[n].get("endpoint") or ()
            resolved = [self.resolve(r, "Endpoint") for r in refs]
            listed[n] = list(dict.fromkeys(e for e in resolved if e is not None))
        for n in self.of_type("Endpoint"):
            owner = self.resolve(self.resources[n].get("managingOrganization"), "Organization")
            if owner is not None:
                extra.setdefault(owner, set()).add(n)
        for n in self.of_type("OrganizationAffiliation"):
            affiliation = self.resources[n]
            if affiliation.get("active") is False:
                continue
            reached = {self.resolve(r, "Endpoint") for r in affiliation.get("endpoint") or ()}
            for side in ("organization", "participatingOrganization"):
                owner = self.resolve(affiliation.get(side), "Organization")
                if owner is not None:
                    extra.setdefault(owner, set()).update(e for e in reached if e is not None)
        for owner, endpoints in extra.items():
            rest = sorted(endpoints - set(listed[owner]), key=self._sort_key)
            listed[owner] = listed[owner] + rest
        return listed

    def _sort_key(self, n: int) -> tuple[str, str]:
        """An Endpoint's place among those its Organization does not list: by address,
        then by all it says."""
        resource = self.resources[n]
        return str(resource.get("address")), json.dumps(resource, sort_keys=True, default=str)

    def _organization(self, n: int, endpoint_entries: list[int]) -> DirectoryOrganization | None:
        """The organization at entry ``n`` with its endpoints, or None (skipped, the
        issues told) when something in it cannot be used."""
        where = f"Bundle.entry[{n}]"
        resource = self.resources[n]
        before = len(self.issues)
        npi = self._npi(resource, f"{where}.resource.identifier")
        name = resource.get("name")
        if not isinstance(name, str) or not name.strip():
            self.issues.append(Issue("name is required", f"{where}.resource.name", "required"))
        endpoints: list[DirectoryEndpoint] = []
        for e in endpoint_entries:
            read = read_endpoint(
                self.resources[e], f"Bundle.entry[{e}].resource", source=self.source, now=self.now
            )
            if isinstance(read, list):
                self.issues.extend(read)
            else:
                endpoints.append(read)
        partner_id = self._partner_id(resource, name, npi, f"{where}.resource.identifier")
        if len(self.issues) > before or partner_id is None or not isinstance(name, str):
            self.skipped.append(
                Passed(where, "its entry or an endpoint of it has issues", partner_id)
            )
            return None
        if resource.get("active") is False:
            self.skipped.append(Passed(where, "the directory marks it inactive", partner_id))
            return None
        ordered = _in_call_order(endpoints)
        if not any(e.status is EndpointStatus.ACTIVE for e in ordered):
            why = "none of its payer-to-payer endpoints is active now (what is registered stays)"
            self.skipped.append(Passed(where, why, partner_id))
            return None
        assert npi is not None
        udap = any(e.udap for e in endpoints)
        return DirectoryOrganization(partner_id, " ".join(name.split()), npi, ordered, udap, where)

    def _partner_id(
        self, resource: Mapping[str, Any], name: object, npi: str | None, where: str
    ) -> PartnerId | None:
        """The id the bundle fixes for it, else its name's slug (None: neither is known)."""
        given = [
            i.get("value")
            for i in resource.get("identifier") or ()
            if isinstance(i, Mapping) and i.get("system") == PARTNER_ID_SYSTEM
        ]
        if given:
            if len(given) == 1 and isinstance(given[0], str) and _PARTNER_ID.match(given[0]):
                return PartnerId(given[0])
            text = "a partner id must be 1-64 lower-case letters, digits or '-', given once"
            self.issues.append(Issue(text, where, "value"))
            return None
        return partner_id_of(name, npi) if isinstance(name, str) and npi else None

    def _npi(self, resource: Mapping[str, Any], where: str) -> str | None:
        values = {
            str(i.get("value", "")).strip()
            for i in resource.get("identifier") or ()
            if isinstance(i, Mapping) and i.get("system") in NPI_SYSTEMS
        }
        if not values:
            text = "a payer needs an NPI identifier (system http://hl7.org/fhir/sid/us-npi)"
            self.issues.append(Issue(text, where, "required"))
            return None
        if len(values) > 1:
            self.issues.append(Issue("the organization names more than one NPI", where, "value"))
            return None
        (npi,) = values
        if not is_valid_npi(npi):
            text = "the NPI must be 10 digits with a valid check digit"
            self.issues.append(Issue(text, where, "value"))
            return None
        return npi


def _is_payer(organization: Mapping[str, Any]) -> bool:
    return any(
        (coding.get("system"), coding.get("code")) in _PAYER_TYPES
        for concept in organization.get("type") or ()
        if isinstance(concept, Mapping)
        for coding in concept.get("coding") or ()
        if isinstance(coding, Mapping)
    )


def _in_call_order(endpoints: list[DirectoryEndpoint]) -> tuple[PartnerEndpoint, ...]:
    """The endpoints by priority: the NDH rank where given, else their place among the
    organization's endpoints (1 first); an address named twice is kept once (active
    first)."""
    ranked = [
        e.endpoint if e.ranked else _with_priority(e.endpoint, place)
        for place, e in enumerate(endpoints, start=1)
    ]
    ordered = sorted(
        ranked, key=lambda e: (e.priority, e.status is not EndpointStatus.ACTIVE, e.url)
    )
    kept: dict[str, PartnerEndpoint] = {}
    for endpoint in ordered:
        kept.setdefault(endpoint.base, endpoint)
    return tuple(kept.values())


def _with_priority(endpoint: PartnerEndpoint, priority: int) -> PartnerEndpoint:
    return replace(endpoint, priority=priority)


def _unique_ids(
    found: list[DirectoryOrganization], issues: list[Issue], skipped: list[Passed]
) -> list[DirectoryOrganization]:
    """Organizations whose names map to the same partner id are all skipped: which is
    meant cannot be told."""
    counts: dict[str, int] = {}
    for organization in found:
        counts[organization.partner_id] = counts.get(organization.partner_id, 0) + 1
    kept = []
    for organization in found:
        if counts[organization.partner_id] == 1:
            kept.append(organization)
            continue
        text = f"another organization of the bundle maps to partner id '{organization.partner_id}'"
        issues.append(Issue(text, f"{organization.entry}.resource.name", "duplicate"))
        skipped.append(Passed(organization.entry, text, organization.partner_id))
    return kept
