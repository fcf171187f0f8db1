"""A partner payer as we know it (pure); the capability-based directory grows here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from payerbridge.errors import InvalidInput, Issue
from payerbridge.net.origins import UrlFault, url_fault
from payerbridge.npi import is_valid_npi
from payerbridge.routing.endpoints import (
    EndpointStatus,
    PartnerEndpoint,
    endpoint_issues,
    endpoints_from_json,
    in_call_order,
)
from payerbridge.types import PartnerId

__all__ = [
    "ACTIVE",
    "DEFAULT_PARTNER_SCOPE",
    "Capabilities",
    "Contact",
    "EndpointStatus",
    "MaintenanceWindow",
    "Operations",
    "Organization",
    "Partner",
    "PartnerAuth",
    "PartnerEndpoint",
    "PartnerStatus",
    "RateLimit",
    "WEEKDAYS",
    "endpoints_from_json",
    "repointed",
    "validate_partner",
]

_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")

# What we ask a partner's authorization server for: its FHIR reads and $member-match.
DEFAULT_PARTNER_SCOPE = (
    "system/*.rs http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
)


# How a partner is operated (set by an operator apart from its registration; an
# operator's document is read by ``operations.parse_operations``).
# A weekly window's day, as an operator names it (0 = Monday).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PartnerStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # no new route to it until an operator resumes it


@dataclass(frozen=True)
class MaintenanceWindow:
    """One-off (``start``–``end``, instants) or weekly (``day`` ``start``–``end`` local
    times in ``zone``; an end before the start runs past midnight)."""

    reason: str
    start: datetime | None = None
    end: datetime | None = None
    day: int | None = None  # 0 = Monday
    local_start: time | None = None
    local_end: time | None = None
    zone: str | None = None
    endpoint: str | None = None  # the FHIR base of the one endpoint it holds; None: all

    def ends_after(self, now: datetime) -> datetime | None:
        """When the window ends, if ``now`` is inside it."""
        if self.start is not None and self.end is not None:
            return self.end if self.start <= now < self.end else None
        assert self.day is not None and self.local_start and self.local_end and self.zone
        zone = ZoneInfo(self.zone)
        local = now.astimezone(zone)
        for days_back in (0, 1):  # a window that began yesterday may run past midnight
            day = local.date() - timedelta(days=days_back)
            if day.weekday() != self.day:
                continue
            begins = datetime.combine(day, self.local_start, zone)
            ends_on = day if self.local_end > self.local_start else day + timedelta(days=1)
            ends = datetime.combine(ends_on, self.local_end, zone)
            if begins <= now < ends:
                return ends.astimezone(UTC)
        return None

    def to_json(self) -> dict[str, Any]:
        held = {"endpoint": self.endpoint} if self.endpoint else {}
        if self.start is not None and self.end is not None:
            return {
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "reason": self.reason,
                **held,
            }
        assert self.day is not None and self.local_start and self.local_end
        return {
            "weekly": WEEKDAYS[self.day],
            "start": self.local_start.strftime("%H:%M"),
            "end": self.local_end.strftime("%H:%M"),
            "zone": self.zone,
            "reason": self.reason,
            **held,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> MaintenanceWindow:
        """A window as kept (``to_json``'s form)."""
        endpoint = item.get("endpoint")
        if "weekly" in item:
            return cls(
                item["reason"],
                day=WEEKDAYS.index(item["weekly"]),
                local_start=time.fromisoformat(item["start"]),
                local_end=time.fromisoformat(item["end"]),
                zone=item["zone"],
                endpoint=endpoint,
            )
        start, end = (datetime.fromisoformat(item[k]).astimezone(UTC) for k in ("start", "end"))
        return cls(item["reason"], start=start, end=end, endpoint=endpoint)


@dataclass(frozen=True)
class RateLimit:
    """The calls a partner takes: ``requests`` per ``per_seconds``, as a burst of at most
    ``requests`` and then one every ``per_seconds / requests`` (GCRA: one timestamp, the
    time the next call would be due if calls came evenly, kept for every worker)."""

    requests: int
    per_seconds: float

    def admit(self, due: datetime | None, now: datetime) -> tuple[datetime | None, datetime]:
        """(None, the new due time) when a call may go now, else (when it may, ``due``
        unchanged); ``due``: as the last admitted call left it."""
        interval = timedelta(seconds=self.per_seconds / self.requests)
        due = max(due or now, now)
        earliest = due - timedelta(seconds=self.per_seconds) + interval
        if earliest > now:
            return earliest, due
        return None, due + interval

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "per_seconds": self.per_seconds}


@dataclass(frozen=True)
class Contact:
    """Whom to call about the partner (its operations desk, its on-call): a name and an
    email address or a phone number, or both."""

    name: str
    email: str | None = None
    phone: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "phone": self.phone}


@dataclass(frozen=True)
class Operations:
    status: PartnerStatus = PartnerStatus.ACTIVE
    maintenance: tuple[MaintenanceWindow, ...] = ()
    note: str | None = None  # the operator's word on a suspension
    rate_limit: RateLimit | None = None  # what the partner announced it takes
    # How long an exchange with it keeps trying from its (re)start: its deadline.
    exchange_budget_seconds: float | None = None
    contacts: tuple[Contact, ...] = ()

    def in_maintenance(
        self, now: datetime, endpoint: str | None = None
    ) -> tuple[datetime, str] | None:
        """The latest end among the windows ``now`` is in, with their reasons: the
        partner's own (every endpoint's) or, given an ``endpoint``'s base, that one's."""
        inside = [
            (end, w.reason)
            for w in self.maintenance
            if w.endpoint == endpoint and (end := w.ends_after(now))
        ]
        if not inside:
            return None
        return max(end for end, _ in inside), "; ".join(reason for _, reason in inside)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "note": self.note,
            "maintenance": [window.to_json() for window in self.maintenance],
            "rate_limit": self.rate_limit.to_json() if self.rate_limit else None,
            "exchange_budget_seconds": self.exchange_budget_seconds,
            "contacts": [contact.to_json() for contact in self.contacts],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Operations:
        """The operations as kept (``to_json``'s form, written once ``parse_operations``
        has checked it); a field a kept document predates takes its default."""
        rate = document.get("rate_limit")
        budget = document.get("exchange_budget_seconds")
        return cls(
            PartnerStatus(document.get("status", "active")),
            tuple(MaintenanceWindow.from_json(w) for w in document.get("maintenance") or ()),
            document.get("note"),
            RateLimit(int(rate["requests"]), float(rate["per_seconds"])) if rate else None,
            None if budget is None else float(budget),
            tuple(
                Contact(c["name"], c.get("email") or None, c.get("phone") or None)
                for c in document.get("contacts") or ()
            ),
        )


ACTIVE = Operations()


@dataclass(frozen=True)
class Capabilities:
    """One reading of a partner's CapabilityStatement."""

    read_at: datetime
    fhir_version: str | None
    guides: Mapping[str, str | None]  # guide → version (None: named without one)
    operations: frozenset[str]  # operation names, e.g. member-match, everything, export
    software: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)  # token, registration
    # Types it searches by the member (a ``patient`` search parameter): a record can be
    # read by searches where $everything is not offered.
    searchable: frozenset[str] = frozenset()
    # Endpoints its discovery documents named that we do not call, with why (a token
    # endpoint on another origin than the FHIR base, no operator having approved it).
    refused: Mapping[str, str] = field(default_factory=dict)

    def offers(self, operation: str) -> bool:
        return operation in self.operations

    def to_json(self) -> dict[str, Any]:
        return {
            "read_at": self.read_at.isoformat(),
            "fhir_version": self.fhir_version,
            "guides": dict(sorted(self.guides.items())),
            "operations": sorted(self.operations),
            "software": self.software,
            "endpoints": dict(sorted(self.endpoints.items())),
            "searchable": sorted(self.searchable),
            **({"refused_endpoints": dict(sorted(self.refused.items()))} if self.refused else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Capabilities:
        return cls(
            read_at=datetime.fromisoformat(data["read_at"]),
            fhir_version=data.get("fhir_version"),
            guides=dict(data.get("guides") or {}),
            operations=frozenset(data.get("operations") or ()),
            software=data.get("software"),
            endpoints=dict(data.get("endpoints") or {}),
            searchable=frozenset(data.get("searchable") or ()),
            refused=dict(data.get("refused_endpoints") or {}),
        )


@dataclass(frozen=True)
class Organization:
    """A health plan as consents and Provenance name it: by NPI."""

    name: str
    npi: str
    fhir_base: str | None = None
    # Where its HRex davinci-configuration is, when it says so on the Coverage it links.
    wellknown: str | None = None


class PartnerAuth(StrEnum):
    """How we get a token from a partner's authorization server."""

    NONE = "none"  # the partner asks no token
    SMART = "smart"  # SMART Backend Services: our client id there, our key's assertions
    UDAP = "udap"  # UDAP B2B: registered there with our community certificate


@dataclass(frozen=True)
class Partner:
    id: PartnerId
    name: str
    npi: str
    base_url: str  # the partner's FHIR base, e.g. https://fhir.oldplan.example/fhir
    # Our client id at the partner's authorization server; None with SMART: the partner
    # asks no token; None with UDAP: not registered there yet. The key we sign with is
    # ours, never stored here.
    client_id: str | None = None
    # Its token endpoint; None: read from {base}/.well-known/smart-configuration.
    token_url: str | None = None
    scope: str = DEFAULT_PARTNER_SCOPE
    auth: PartnerAuth = PartnerAuth.NONE
    # Set by operators apart from the registration (suspension, maintenance windows).
    operations: Operations = ACTIVE
    # Where it answers, ``base_url`` first among them (the first active one by priority):
    # its discovery documents are read there; an exchange fails over down the list.
    endpoints: tuple[PartnerEndpoint, ...] = ()

    def __post_init__(self) -> None:
        # A client id means we authenticate: with SMART unless UDAP was asked for.
        if self.auth is PartnerAuth.NONE and self.client_id is not None:
            object.__setattr__(self, "auth", PartnerAuth.SMART)
        if not self.endpoints:
            object.__setattr__(self, "endpoints", (PartnerEndpoint(self.base_url),))
        elif len(self.endpoints) == 1 and self.base_url:
            # A partner with one endpoint re-pointed by its base URL: the endpoint moves.
            [only] = self.endpoints
            if only.base != self.fhir_base:
                object.__setattr__(self, "endpoints", (replace(only, url=self.base_url),))
        elif not self.base_url:
            active = [e for e in in_call_order(self.endpoints) if e.status is EndpointStatus.ACTIVE]
            object.__setattr__(self, "base_url", (active or in_call_order(self.endpoints))[0].url)

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/")

    def call_order(self) -> list[PartnerEndpoint]:
        """The endpoints an exchange may call, in the order it tries them."""
        return [e for e in in_call_order(self.endpoints) if e.status is EndpointStatus.ACTIVE]

    def at(self, endpoint: PartnerEndpoint) -> Partner:
        """The partner as called at ``endpoint``: its calls, breaker and tokens are that
        endpoint's."""
        return self if endpoint.base == self.fhir_base else replace(self, base_url=endpoint.url)

    @property
    def organization(self) -> Organization:
        return Organization(self.name, self.npi, self.fhir_base)


def repointed(before: Partner, after: Partner) -> bool:
    """Whether an update changes where we call or who we say we are there."""
    fields = ("base_url", "npi", "client_id", "token_url", "auth")
    if {e.base for e in before.endpoints} != {e.base for e in after.endpoints}:
        return True
    return any(getattr(before, name) != getattr(after, name) for name in fields)


def validate_partner(partner: Partner) -> None:
    """Raise InvalidInput naming every field that is wrong."""
    issues = []
    if not _PARTNER_ID.match(partner.id):
        issues.append(Issue("id must be 1-64 lower-case letters, digits or '-'", "id"))
    if not partner.name.strip():
        issues.append(Issue("name is required", "name", "required"))
    if not is_valid_npi(partner.npi):
        issues.append(Issue("npi must be a 10-digit NPI with a valid check digit", "npi"))
    faults = {"base_url": url_fault(partner.base_url)}
    if partner.token_url is not None:
        faults["token_url"] = url_fault(partner.token_url)
    if faults["base_url"] is UrlFault.NOT_HTTP:
        issues.append(
            Issue("base_url must be an absolute http(s) URL of the partner's FHIR base", "base_url")
        )
    if faults.get("token_url") is UrlFault.NOT_HTTP:
        issues.append(Issue("token_url must be an absolute http(s) URL", "token_url"))
    issues.extend(_credentials_in(faults))
    if partner.client_id is not None and not partner.client_id.strip():
        issues.append(Issue("client_id must not be blank", "client_id"))
    if partner.auth is PartnerAuth.NONE and partner.token_url is not None:
        issues.append(Issue("token_url needs a client_id (or auth 'udap')", "token_url"))
    if not partner.scope.split():
        issues.append(Issue("scope must name at least one scope", "scope", "required"))
    issues.extend(endpoint_issues(partner.endpoints, checked=partner.base_url))
    first = partner.call_order()
    if first and first[0].base != partner.fhir_base:
        issues.append(Issue("base_url must be the first active endpoint by priority", "base_url"))
    if issues:
        raise InvalidInput("the partner registration is not valid", issues=issues)


def _credentials_in(faults: dict[str, UrlFault | None]) -> list[Issue]:
    """A URL with ``user:password@`` in it is refused: its credentials would go as Basic
    auth to whoever answers there (ADR 0046)."""
    return [
        Issue(
            f"{name} must not carry a user name or password (user:password@ before the "
            "host): they would be sent to the partner as Basic auth. Give the host alone; "
            "we authenticate with client_id and our key (SMART) or UDAP",
            name,
            "value",
        )
        for name, fault in faults.items()
        if fault is UrlFault.CREDENTIALS
    ]
