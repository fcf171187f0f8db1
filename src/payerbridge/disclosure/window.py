"""The payer-to-payer window: which of a member's records an exchange carries by date.

CMS-0057-F asks for the data with a date of service in the five years before the
request, and PDex narrows prior authorizations to those that are active or pending or
changed status in the last year. PDex 2.1 made five years a cap; 2.2 made it a floor
the responder may exceed, and forbids rewriting ``_since`` (which is about
``meta.lastUpdated``, not the date of service). So the window is applied here, by each
resource's own service dates, never by rewriting what the caller asked; its length is
configurable upwards (ADR 0012).

A record is in the window when its latest service date falls on or after the start, when
it states no service date at all (nothing to judge by, and PDex asks for the whole
record), or when it is still current: an active problem, allergy, order or care plan is
part of today's care however long ago it began. Everything else on the path (consent,
segmentation, withholding) is decided before the window: a record outside the window
may still make another one sensitive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any

from payerbridge.disclosure.search import span_of
from payerbridge.json_paths import ElementPath, element_path, values_at

__all__ = ["ExchangeWindow", "PRE_AUTH_PERIOD", "is_prior_authorization"]

PRE_AUTH_PERIOD = (
    "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-itemPreAuthPeriod"
)

# Where each type states when the care happened: the latest of these dates counts, and a
# Period without an end is ongoing.
_SERVICE_DATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "AllergyIntolerance": ("lastOccurrence", "onsetDateTime", "onsetPeriod", "recordedDate"),
        "CarePlan": ("period", "created"),
        "CareTeam": ("period",),
        "Claim": ("billablePeriod", "item.servicedDate", "item.servicedPeriod", "created"),
        "Condition": (
            "abatementDateTime",
            "abatementPeriod",
            "onsetDateTime",
            "onsetPeriod",
            "recordedDate",
        ),
        "Coverage": ("period",),
        "DiagnosticReport": ("effectiveDateTime", "effectivePeriod", "issued"),
        "DocumentReference": ("context.period", "date"),
        "Encounter": ("period",),
        "ExplanationOfBenefit": (
            "billablePeriod",
            "item.servicedDate",
            "item.servicedPeriod",
            "created",
        ),
        "Goal": ("target.dueDate", "statusDate", "startDate"),
        "Immunization": ("occurrenceDateTime",),
        "MedicationDispense": ("whenHandedOver", "whenPrepared"),
        "MedicationRequest": ("authoredOn",),
        "Observation": ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"),
        "Procedure": ("performedDateTime", "performedPeriod"),
    }
)

# Still part of the member's care, whatever its dates say.
_CURRENT: Mapping[str, tuple[str, frozenset[str]]] = MappingProxyType(
    {
        "AllergyIntolerance": ("clinicalStatus.coding.code", frozenset({"active"})),
        "CarePlan": ("status", frozenset({"active", "on-hold"})),
        "Condition": (
            "clinicalStatus.coding.code",
            frozenset({"active", "recurrence", "relapse"}),
        ),
        "Coverage": ("status", frozenset({"active"})),
        "Goal": ("lifecycleStatus", frozenset({"proposed", "planned", "accepted", "active"})),
        "MedicationRequest": ("status", frozenset({"active", "on-hold"})),
    }
)

_PENDING_OUTCOMES = frozenset({"queued", "partial"})


def is_prior_authorization(resource: Mapping[str, Any]) -> bool:
    return (
        resource.get("resourceType") == "ExplanationOfBenefit"
        and resource.get("use") == "preauthorization"
    )


@dataclass(frozen=True)
class ExchangeWindow:
    """What an exchange asked at ``now`` carries: service dates from ``service_since``,
    prior authorizations current or changed since ``prior_auth_changed_since``."""

    now: datetime
    service_since: date
    prior_auth_changed_since: datetime

    @classmethod
    def at(cls, now: datetime, *, years: int) -> ExchangeWindow:
        return cls(now, _years_before(now.date(), years), now - timedelta(days=365))

    def admits(self, resource: Mapping[str, Any]) -> bool:
        if is_prior_authorization(resource):
            return self._admits_prior_authorization(resource)
        resource_type = str(resource.get("resourceType"))
        current = _CURRENT_PATHS.get(resource_type)
        if current is not None:
            path, codes = current
            if any(str(v) in codes for v in path.values(resource)):
                return True
        return _any_ends_after(resource, _SERVICE_DATE_PATHS.get(resource_type, ()), self._start)

    @cached_property
    def _start(self) -> datetime:
        return datetime.combine(self.service_since, time.min, UTC)

    def _admits_prior_authorization(self, resource: Mapping[str, Any]) -> bool:
        status = resource.get("status")
        if status == "entered-in-error":
            return False
        if status == "active" and resource.get("outcome") in _PENDING_OUTCOMES:
            return True  # pending: not decided yet
        if status == "active" and self._authorized_now_or_later(resource):
            return True  # current: its authorized period has not ended
        # meta.lastUpdated as the store writes it: an instant in UTC.
        changed = span_of((resource.get("meta") or {}).get("lastUpdated"))
        return changed is not None and changed[0] >= self.prior_auth_changed_since

    def _authorized_now_or_later(self, resource: Mapping[str, Any]) -> bool:
        periods = list(values_at(resource, "preAuthRefPeriod"))
        for extension in values_at(resource, "item.extension"):
            if isinstance(extension, dict) and extension.get("url") == PRE_AUTH_PERIOD:
                periods.append(extension.get("valuePeriod"))
        return any((span := span_of(period)) and span[1] > self.now for period in periods)


_CURRENT_PATHS = {
    resource_type: (element_path(path), codes) for resource_type, (path, codes) in _CURRENT.items()
}
_SERVICE_DATE_PATHS = {
    resource_type: tuple(element_path(path) for path in paths)
    for resource_type, paths in _SERVICE_DATES.items()
}


def _any_ends_after(
    resource: Mapping[str, Any], paths: tuple[ElementPath, ...], start: datetime
) -> bool:
    """Whether the latest of the resource's service dates ends after ``start`` (an open
    Period: never ends), or it states none at all."""
    dated = False
    for path in paths:
        for value in path.values(resource):
            span = _span_of_text(value) if isinstance(value, str) else span_of(value)
            if span:
                if span[1] > start:
                    return True
                dated = True
    return not dated


# Many records share their dates: a date's span is worked out once.
_span_of_text = lru_cache(maxsize=4096)(span_of)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
