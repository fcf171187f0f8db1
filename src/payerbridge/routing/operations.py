"""How a partner is operated (pure; the types are the room's model, this module reads an
operator's document): whether an operator has suspended exchanges with it,
the maintenance windows it announced, one-off or weekly in its own time zone, the rate
it takes, and how long an exchange keeps trying it (its time budget; unset: the
platform's, else the rule's clocks, ``exchange.budgets``).

Set by an operator (``PUT /partners/{id}/operations``, ``payerbridge partners
operations``), kept apart from the registration so re-registering a partner does not
clear them. The route decision reads them: a suspended partner has no route, one in a
maintenance window is waited for until the window ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from payerbridge.errors import InvalidInput, Issue
from payerbridge.routing.model import (
    ACTIVE,
    WEEKDAYS,
    Contact,
    MaintenanceWindow,
    Operations,
    PartnerStatus,
    RateLimit,
)

__all__ = [
    "ACTIVE",
    "Contact",
    "MaintenanceWindow",
    "Operations",
    "PartnerStatus",
    "RateLimit",
    "parse_operations",
]


def parse_operations(document: Any) -> Operations:
    """An operator's document (``to_json``'s form); InvalidInput names every problem."""
    if not isinstance(document, Mapping):
        raise InvalidInput("operations must be a JSON object", issues=[Issue("not an object", "")])
    issues: list[Issue] = []
    known = {"status", "note", "maintenance", "rate_limit", "exchange_budget_seconds", "contacts"}
    unknown = set(document) - known
    issues += [Issue(f"unknown field '{name}'", name) for name in sorted(unknown)]
    status = document.get("status", "active")
    if status not in {s.value for s in PartnerStatus}:
        issues.append(Issue("status must be 'active' or 'suspended'", "status"))
    note = document.get("note")
    if note is not None and not isinstance(note, str):
        issues.append(Issue("note must be text", "note"))
    windows: list[MaintenanceWindow] = []
    raw = document.get("maintenance") or []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        issues.append(Issue("maintenance must be a list of windows", "maintenance"))
        raw = []
    for index, item in enumerate(raw):
        window = _window(item, f"maintenance[{index}]", issues)
        if window is not None:
            windows.append(window)
    rate_limit = _rate_limit(document.get("rate_limit"), issues)
    budget = _budget(document.get("exchange_budget_seconds"), issues)
    contacts = _contacts(document.get("contacts"), issues)
    if issues:
        raise InvalidInput("the partner's operations are not valid", issues=issues)
    return Operations(PartnerStatus(status), tuple(windows), note, rate_limit, budget, contacts)


def _contacts(value: Any, issues: list[Issue]) -> tuple[Contact, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        issues.append(Issue("contacts must be a list of contacts", "contacts"))
        return ()
    found: list[Contact] = []
    for index, item in enumerate(value):
        where = f"contacts[{index}]"
        if not isinstance(item, Mapping):
            issues.append(Issue('a contact is {"name", "email", "phone"}', where))
            continue
        issues += [
            Issue(f"unknown field '{k}'", f"{where}.{k}")
            for k in sorted(set(item) - {"name", "email", "phone"})
        ]
        name, email, phone = (_text(item.get(k), f"{where}.{k}", issues) for k in _CONTACT)
        if not name:
            issues.append(Issue("a contact has a name", f"{where}.name"))
        if not email and not phone:
            issues.append(Issue("a contact has an email address or a phone number", where))
        if email and ("@" not in email or any(c.isspace() for c in email)):
            issues.append(Issue("not an email address", f"{where}.email"))
        if phone and not all(c.isdigit() or c in "+-() ." for c in phone):
            issues.append(
                Issue("a phone number holds digits, spaces and + - ( ) .", f"{where}.phone")
            )
        if name and (email or phone):
            found.append(Contact(name, email or None, phone or None))
    return tuple(found)


_CONTACT = ("name", "email", "phone")


def _text(value: Any, where: str, issues: list[Issue]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 200:
        issues.append(Issue("text of at most 200 characters", where))
        return ""
    return value.strip()


# A budget shorter than this could not hold one call and its retry; longer than this
# outlives any clock of the rule.
_BUDGET_RANGE = (1.0, 90 * 24 * 3600.0)


def _budget(value: Any, issues: list[Issue]) -> float | None:
    if value is None:
        return None
    low, high = _BUDGET_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        issues.append(
            Issue(
                f"exchange_budget_seconds is the seconds an exchange keeps trying, {low:g} "
                f"to {high:g} (null: the platform's default)",
                "exchange_budget_seconds",
            )
        )
        return None
    return float(value)


def _rate_limit(value: Any, issues: list[Issue]) -> RateLimit | None:
    if value is None:
        return None
    requests = value.get("requests") if isinstance(value, Mapping) else None
    per = value.get("per_seconds") if isinstance(value, Mapping) else None
    valid = (
        isinstance(requests, int)
        and not isinstance(requests, bool)
        and requests >= 1
        and isinstance(per, int | float)
        and not isinstance(per, bool)
        and per > 0
    )
    if not valid or set(value) - {"requests", "per_seconds"}:
        issues.append(
            Issue(
                'rate_limit is {"requests": N (1 or more), "per_seconds": S (more than 0)}',
                "rate_limit",
            )
        )
        return None
    assert isinstance(requests, int) and isinstance(per, int | float)
    return RateLimit(requests, float(per))


def _window(item: Any, where: str, issues: list[Issue]) -> MaintenanceWindow | None:
    if not isinstance(item, Mapping):
        issues.append(Issue("a window is an object", where))
        return None
    allowed = {"start", "end", "reason", "weekly", "zone", "endpoint"}
    issues += [Issue(f"unknown field '{k}'", f"{where}.{k}") for k in sorted(set(item) - allowed)]
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        issues.append(Issue("say why (reason): operators and exchanges show it", f"{where}.reason"))
        reason = ""
    endpoint = item.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or "://" not in endpoint):
        text = "endpoint is the FHIR base of one of the partner's endpoints (unset: all of them)"
        issues.append(Issue(text, f"{where}.endpoint"))
        endpoint = None
    found = (
        _weekly(item, reason, where, issues)
        if "weekly" in item
        else _once(item, reason, where, issues)
    )
    if found is None or endpoint is None:
        return found
    return replace(found, endpoint=endpoint.rstrip("/"))


def _once(
    item: Mapping[str, Any], reason: str, where: str, issues: list[Issue]
) -> MaintenanceWindow | None:
    start, end = (_instant(item.get(k), f"{where}.{k}", issues) for k in ("start", "end"))
    if start is None or end is None:
        return None
    if end <= start:
        issues.append(Issue("end must be after start", f"{where}.end"))
        return None
    return MaintenanceWindow(reason, start=start, end=end)


def _weekly(
    item: Mapping[str, Any], reason: str, where: str, issues: list[Issue]
) -> MaintenanceWindow | None:
    day = item.get("weekly")
    if day not in WEEKDAYS:
        issues.append(Issue(f"weekly must be one of {', '.join(WEEKDAYS)}", f"{where}.weekly"))
    begins, ends = (_clock(item.get(k), f"{where}.{k}", issues) for k in ("start", "end"))
    zone = item.get("zone")
    try:
        ZoneInfo(zone) if isinstance(zone, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if not isinstance(zone, str):
        issues.append(
            Issue("zone must be an IANA time zone, e.g. America/New_York", f"{where}.zone")
        )
    if day not in WEEKDAYS or begins is None or ends is None or not isinstance(zone, str):
        return None
    if begins == ends:
        issues.append(Issue("a weekly window cannot end when it starts", f"{where}.end"))
        return None
    return MaintenanceWindow(
        reason, day=WEEKDAYS.index(day), local_start=begins, local_end=ends, zone=zone
    )


def _instant(value: Any, where: str, issues: list[Issue]) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        issues.append(Issue("an instant with its offset, e.g. 2026-12-06T02:00:00-05:00", where))
        return None
    return parsed.astimezone(UTC)


def _clock(value: Any, where: str, issues: list[Issue]) -> time | None:
    try:
        parsed = time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        issues.append(Issue("a local time HH:MM", where))
    return parsed
