"""A partner's endpoints (pure): the FHIR bases at which it answers, each with its
priority, its status, the PDex versions it announced and where we learnt of it (an
operator, the partner's HRex ``.well-known`` file, a directory bundle). Exchanges call
the first that can be called and fail over to the next (ADR 0060).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from payerbridge.errors import Issue
from payerbridge.net.origins import UrlFault, url_fault

__all__ = [
    "OPERATOR_SOURCE",
    "EndpointPlan",
    "EndpointStatus",
    "PartnerEndpoint",
    "endpoint_issues",
    "endpoints_from_json",
    "in_call_order",
    "plan_endpoints",
]

OPERATOR_SOURCE = "operator"
MAX_ENDPOINTS = 16  # a partner's regions, versions and recovery sites, with room to spare


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    OFF = "off"  # never called: its directory says so, or an operator (``note`` says why)


@dataclass(frozen=True)
class PartnerEndpoint:
    url: str  # a FHIR base
    priority: int = 0  # lower is tried first; ties keep the order given
    status: EndpointStatus = EndpointStatus.ACTIVE
    versions: tuple[str, ...] = ()  # the PDex versions announced for it ("2.2"); (): unsaid
    source: str = OPERATOR_SOURCE  # operator, "well-known <url>" or "directory <name>"
    note: str | None = None  # why it is off, or what its source said of it

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "priority": self.priority,
            "status": self.status.value,
            "versions": list(self.versions),
            "source": self.source,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> PartnerEndpoint:
        """An endpoint as kept (``to_json``'s form)."""
        return cls(
            str(item["url"]),
            int(item.get("priority") or 0),
            EndpointStatus(item.get("status") or EndpointStatus.ACTIVE),
            tuple(str(v) for v in item.get("versions") or ()),
            str(item.get("source") or OPERATOR_SOURCE),
            item.get("note"),
        )


def endpoints_from_json(items: Sequence[Mapping[str, Any]]) -> tuple[PartnerEndpoint, ...]:
    return tuple(PartnerEndpoint.from_json(item) for item in items)


def in_call_order(endpoints: Sequence[PartnerEndpoint]) -> list[PartnerEndpoint]:
    """The endpoints by priority (a stable sort: ties keep the order given)."""
    return sorted(endpoints, key=lambda endpoint: endpoint.priority)


def endpoint_issues(
    endpoints: Sequence[PartnerEndpoint], *, checked: str | None = None
) -> list[Issue]:
    """What is wrong with a partner's endpoints, each named by its place; the address
    of the one at ``checked`` (its base URL, named by its own issues) is not named again."""
    issues: list[Issue] = []
    if len(endpoints) > MAX_ENDPOINTS:
        issues.append(Issue(f"a partner has at most {MAX_ENDPOINTS} endpoints", "endpoints"))
    seen: set[str] = set()
    for n, endpoint in enumerate(endpoints):
        where = f"endpoints[{n}]"
        if endpoint.url != checked:
            issues.extend(_address_issues(endpoint.url, where))
        if endpoint.base in seen:
            issues.append(Issue(f"{endpoint.url} is named twice", where, "duplicate"))
        seen.add(endpoint.base)
        if not -1000 <= endpoint.priority <= 1000:
            issues.append(Issue("priority must be between -1000 and 1000", where))
    if endpoints and all(e.status is EndpointStatus.OFF for e in endpoints):
        issues.append(Issue("at least one endpoint must be active", "endpoints", "required"))
    return issues


def _address_issues(url: str, where: str) -> list[Issue]:
    fault = url_fault(url)
    if fault is UrlFault.NOT_HTTP:
        return [Issue("url must be an absolute http(s) URL of a FHIR base", where)]
    if fault is UrlFault.CREDENTIALS:
        return [Issue("url must not carry a user name or password (user:password@)", where)]
    return []


@dataclass(frozen=True)
class EndpointPlan:
    """Where an exchange calls a partner, decided now: ``first`` (the first active
    endpoint by priority that is neither in its maintenance window nor behind an open
    circuit, else the first active one), every endpoint with why it is first, next or
    skipped, and, when every active endpoint is held, when the first is free again,
    why, and whether that wait was planned (a maintenance window)."""

    first: str
    considered: tuple[tuple[str, str], ...]  # (url, why)
    held_until: datetime | None = None
    held_reason: str | None = None  # None with ``held_until``: an open circuit
    held_planned: bool = False


def plan_endpoints(
    endpoints: Sequence[PartnerEndpoint],
    open_until: Mapping[str, datetime],
    now: datetime,
    windows: Mapping[str, tuple[datetime, str]] | None = None,
) -> EndpointPlan:
    """The plan over ``endpoints`` given each base's open circuit (``open_until``) and
    maintenance window (``windows``: its end and why)."""
    considered: list[tuple[str, str]] = []
    usable: list[PartnerEndpoint] = []
    held: list[tuple[datetime, str | None, bool]] = []  # (free at, why, planned)
    for endpoint in in_call_order(endpoints):
        versions = f", PDex {'/'.join(endpoint.versions)}" if endpoint.versions else ""
        where = f"priority {endpoint.priority}{versions}, from {endpoint.source}"
        until = open_until.get(endpoint.base)
        window = (windows or {}).get(endpoint.base)
        if endpoint.status is EndpointStatus.OFF:
            considered.append(
                (endpoint.url, f"skipped: off ({endpoint.note or 'no reason given'})")
            )
        elif window is not None:
            end, why = window
            text = f"in its maintenance window until {end.isoformat()} ({why})"
            held.append((end, text, True))
            considered.append((endpoint.url, f"skipped: {text} ({where})"))
        elif until is not None and until > now:
            held.append((until, None, False))
            considered.append(
                (endpoint.url, f"skipped: its circuit is open until {until.isoformat()} ({where})")
            )
        else:
            role = (
                "called first"
                if not usable
                else f"called if those before it fail ({len(usable) + 1})"
            )
            considered.append((endpoint.url, f"{role} ({where})"))
            usable.append(endpoint)
    active = [e for e in in_call_order(endpoints) if e.status is EndpointStatus.ACTIVE]
    if usable:
        return EndpointPlan(usable[0].url, tuple(considered))
    first = (active or in_call_order(endpoints))[0].url
    if not held:
        return EndpointPlan(first, tuple(considered))
    free_at, reason, planned = min(held, key=lambda h: h[0])
    return EndpointPlan(first, tuple(considered), free_at, reason, planned)
