"""How an exchange reaches a partner (pure): which way to find the member and which way
to read the member's data, chosen from what the directory last read of the partner and
from the live state of its endpoint, with every alternative that was not chosen and why.

The decision is recorded with the exchange (the ``route_selected`` step) with the
reading and the policy it was made from, so an operator can see why an exchange went
the way it did; a replay decides again. Nothing here names a partner: the partner's
own CapabilityStatement decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.endpoints import EndpointPlan
from payerbridge.routing.operations import ACTIVE, Operations, PartnerStatus
from payerbridge.routing.profiles import PROFILES, MemberMatchShape

__all__ = [
    "BULK",
    "EVERYTHING",
    "ROUTE_POLICY",
    "SEARCH",
    "RouteDecision",
    "decide_route",
    "read_data_path",
]

ROUTE_POLICY = "route-policy/2"

# Ways to read a member's record, in the order we prefer them.
EVERYTHING, SEARCH, BULK = "$everything", "search by compartment", "bulk export"


@dataclass(frozen=True)
class RouteDecision:
    """The chosen way (None: there is none) and each rejected one with its reason."""

    endpoint: str
    find_member: str | None  # "MemberId" or "Patient?identifier="
    data: str | None  # EVERYTHING or SEARCH
    rejected: tuple[tuple[str, str], ...]
    reading: str  # when the partner's capabilities were read, or "never read"
    shape: MemberMatchShape = PROFILES.current  # the $member-match request we send
    policy: str = ROUTE_POLICY
    notes: tuple[str, ...] = ()
    unavailable: str | None = None  # why the partner takes no exchange (suspended)
    # The partner's one endpoint cannot be called before then: the exchange waits.
    wait_until: datetime | None = None
    wait_reason: str | None = None
    planned_wait: bool = False  # a maintenance window: the wait does not use the budget
    search_types: tuple[str, ...] = ()  # SEARCH: the types read by ``patient``
    # The partner's endpoints in the order they are tried, each with why (ADR 0060).
    endpoints: tuple[tuple[str, str], ...] = ()

    @property
    def routable(self) -> bool:
        return self.unavailable is None and self.find_member is not None and self.data is not None

    @property
    def data_path(self) -> str | None:
        """The data way as kept with the exchange (``read_data_path`` reads it back)."""
        if self.data == SEARCH:
            return f"{SEARCH}: {','.join(self.search_types)}"
        return self.data

    def why_not(self) -> str:
        reasons = [f"{option}: {reason}" for option, reason in self.rejected]
        return "; ".join([self.unavailable, *reasons] if self.unavailable else reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "find_member": self.find_member,
            "data": self.data,
            **({"search_types": list(self.search_types)} if self.search_types else {}),
            "rejected": [{"option": o, "reason": r} for o, r in self.rejected],
            "request_shape": f"HRex {self.shape.hrex}",
            "unavailable": self.unavailable,
            "wait": (
                {"until": self.wait_until.isoformat(), "reason": self.wait_reason}
                if self.wait_until
                else None
            ),
            "notes": list(self.notes),
            **(
                {"endpoints": [{"url": url, "why": why} for url, why in self.endpoints]}
                if self.endpoints
                else {}
            ),
            "capabilities_read_at": self.reading,
            "policy": self.policy,
            "profiles": PROFILES.version,
        }


def decide_route(
    where: str | EndpointPlan,
    capabilities: Capabilities | None,
    *,
    now: datetime | None = None,
    operations: Operations = ACTIVE,
) -> RouteDecision:
    """The route for an exchange asked ``now``. A partner never read is tried the
    standard way (``$member-match``, then ``$everything``), and the decision says so.

    ``where``: the partner's one endpoint, or the plan over its endpoints
    (``endpoints.plan_endpoints``: the first to call, every endpoint with why it is
    called first, next or skipped, and when a circuit may half-open if all are open).

    A suspended partner has no route. A partner in a maintenance window, or whose
    endpoints' circuits are all open, is waited for: until the window ends, which does
    not count against the exchange's budget, or until a circuit may half-open."""
    plan = EndpointPlan(where, ()) if isinstance(where, str) else where
    endpoint, endpoints = plan.first, plan.considered
    rejected: list[tuple[str, str]] = []
    notes: list[str] = []
    if capabilities is None:
        notes.append("the partner's capabilities were never read: the standard route is tried")
        reading = "never read"
    else:
        reading = capabilities.read_at.isoformat()
    shape = _shape(capabilities, notes)
    find_member = _find_member(capabilities, shape, rejected, notes)
    data, search_types = _data_path(capabilities, reading, rejected)
    unavailable = None
    if operations.status is PartnerStatus.SUSPENDED:
        unavailable = "the partner is suspended by an operator" + (
            f": {operations.note}" if operations.note else ""
        )
    elif capabilities is not None and "token" in capabilities.refused:
        unavailable = f"the partner's token endpoint is refused: {capabilities.refused['token']}"
    wait_until, wait_reason, planned = _wait(plan, operations, now)
    if wait_reason is not None:
        held = (
            "the partner has one endpoint and it is"
            if len(endpoints) < 2
            else "every endpoint is held; the first to be free is"
        )
        notes.append(f"waits: {held} {wait_reason}")
    if len(endpoints) > 1:
        notes.append("an endpoint that does not answer is failed over to the next")
    if operations.rate_limit is not None:
        limit = operations.rate_limit
        notes.append(
            f"the partner takes {limit.requests} calls per {limit.per_seconds:g} s: "
            "each call waits for its turn"
        )
    return RouteDecision(
        endpoint,
        find_member,
        data,
        tuple(rejected),
        reading,
        shape,
        notes=tuple(notes),
        unavailable=unavailable,
        wait_until=wait_until,
        wait_reason=wait_reason,
        planned_wait=planned,
        search_types=search_types,
        endpoints=endpoints,
    )


def _wait(
    plan: EndpointPlan, operations: Operations, now: datetime | None
) -> tuple[datetime | None, str | None, bool]:
    """Until when the exchange waits before calling, why, and whether it was planned: the
    partner's own maintenance window, or longer while every endpoint is held (each in its
    window or behind an open circuit), until the first is free."""
    wait_until, wait_reason, planned = None, None, False
    maintenance = operations.in_maintenance(now) if now is not None else None
    if maintenance is not None:
        wait_until, planned = maintenance[0], True
        wait_reason = f"in its maintenance window until {wait_until.isoformat()} ({maintenance[1]})"
    held_until = plan.held_until
    if (
        now is not None
        and held_until is not None
        and held_until > now
        and (wait_until is None or held_until > wait_until)
    ):
        wait_until, planned = held_until, plan.held_planned
        wait_reason = plan.held_reason or (
            "its endpoint's circuit is open after repeated failures, until "
            f"{held_until.isoformat()}"
        )
    return wait_until, wait_reason, planned


def read_data_path(kept: str | None) -> tuple[str, tuple[str, ...]]:
    """The data way and the types searched, as ``RouteDecision.data_path`` kept them
    (an exchange routed before data paths were kept reads ``$everything``)."""
    if kept is None or kept == EVERYTHING:
        return EVERYTHING, ()
    way, _, types = kept.partition(": ")
    return way, tuple(t for t in types.split(",") if t)


def _data_path(
    capabilities: Capabilities | None, reading: str, rejected: list[tuple[str, str]]
) -> tuple[str | None, tuple[str, ...]]:
    """``$everything`` where offered (one call reads the whole record), else searches by
    the member over every type the partner searches by ``patient``."""
    data: str | None = None
    if capabilities is not None and not capabilities.offers("everything"):
        rejected.append((EVERYTHING, f"the partner does not offer $everything (read {reading})"))
    else:
        data = EVERYTHING
    searchable = capabilities.searchable if capabilities is not None else frozenset()
    if capabilities is None:
        rejected.append((SEARCH, "never read: which types the partner searches is unknown"))
    elif not searchable:
        rejected.append((SEARCH, f"the partner searches no type by patient (read {reading})"))
    elif data is not None:
        rejected.append((SEARCH, "$everything reads the whole record in one call"))
    else:
        data = SEARCH
    rejected.append((BULK, "this requester does not run bulk exports yet"))
    return data, tuple(sorted(searchable)) if data == SEARCH else ()


def _shape(capabilities: Capabilities | None, notes: list[str]) -> MemberMatchShape:
    if capabilities is None:
        return PROFILES.current
    guides = capabilities.guides
    shape, why = PROFILES.for_partner(guides.get("hrex"), guides.get("pdex"))
    notes.append(f"$member-match is sent in the HRex {shape.hrex} shape: {why}")
    return shape


def _find_member(
    capabilities: Capabilities | None,
    shape: MemberMatchShape,
    rejected: list[tuple[str, str]],
    notes: list[str],
) -> str | None:
    if capabilities is not None and not capabilities.offers("member-match"):
        rejected.append(("$member-match", "the partner does not offer $member-match"))
        return None
    if not shape.member_id:
        # The answer names the member's identifier only; PDex 2.0 then searches for it.
        rejected.append(("MemberId", f"HRex {shape.hrex} answers no MemberId"))
        return "Patient?identifier="
    notes.append("an answer without MemberId is followed by Patient?identifier=")
    return "MemberId"
