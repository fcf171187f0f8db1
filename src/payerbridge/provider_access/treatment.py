"""The services a claim or encounter shows (ADR 0059): which providers, by NPI, served
its member on which days. Pure: the resources are read as FHIR JSON; the NPIs of the
Practitioners and Organizations they reference are looked up in ``npi_of``.

A provider is named by a reference to its Practitioner or Organization, or by a
reference carrying the NPI as its identifier. A reference that resolves to no NPI names
no provider: nobody is attributed on a guess.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.npi import is_valid_npi
from payerbridge.provider_access.model import SERVICE_TYPES, ServiceFact
from payerbridge.provider_access.ports import ServiceRecords
from payerbridge.timestamps import day_of
from payerbridge.types import MemberId

__all__ = ["npi_of_provider", "service_facts", "services_shown"]


def npi_of_provider(resource: Mapping[str, Any]) -> str | None:
    """A Practitioner's or Organization's NPI: its identifier in the NPI system with a
    valid check digit (None when it has none, or two that differ)."""
    found = {
        str(i.get("value"))
        for i in resource.get("identifier") or ()
        if isinstance(i, dict) and i.get("system") == NPI_SYSTEM
    }
    npis = {value for value in found if is_valid_npi(value)}
    return npis.pop() if len(npis) == 1 else None


def _references(resource: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The references by which a claim or encounter names who served."""
    for name in ("provider", "facility", "serviceProvider"):
        reference = resource.get(name)
        if isinstance(reference, dict):
            yield reference
    for member in resource.get("careTeam") or ():
        if isinstance(member, dict) and isinstance(member.get("provider"), dict):
            yield member["provider"]
    for participant in resource.get("participant") or ():
        if isinstance(participant, dict) and isinstance(participant.get("individual"), dict):
            yield participant["individual"]


def _npi(reference: Mapping[str, Any], npi_of: Mapping[str, str]) -> str | None:
    identifier = reference.get("identifier")
    if isinstance(identifier, dict) and identifier.get("system") == NPI_SYSTEM:
        value = str(identifier.get("value"))
        return value if is_valid_npi(value) else None
    target = reference.get("reference")
    return npi_of.get(target) if isinstance(target, str) else None


def _service_days(resource: Mapping[str, Any]) -> set[date]:
    """The days of service: the items' service dates and the billing period's start for
    a claim, the period's start for an encounter; a claim with none, its creation."""
    days: set[date | None] = set()
    for item in resource.get("item") or ():
        if isinstance(item, dict):
            days.add(day_of(item.get("servicedDate")))
            period = item.get("servicedPeriod")
            days.add(day_of(period.get("start")) if isinstance(period, dict) else None)
    for name in ("billablePeriod", "period"):
        period = resource.get(name)
        if isinstance(period, dict):
            days.add(day_of(period.get("start")))
    found = {day for day in days if day is not None}
    if not found and (created := day_of(resource.get("created"))) is not None:
        found.add(created)
    return found


def service_facts(
    resource: Mapping[str, Any], member_id: MemberId, npi_of: Mapping[str, str]
) -> list[ServiceFact]:
    """The services ``resource`` (an EOB or Encounter in ``member_id``'s compartment)
    shows: each provider it names with an NPI, on each day of service."""
    if resource.get("resourceType") not in SERVICE_TYPES:
        return []
    if resource.get("status") in ("entered-in-error", "cancelled"):
        return []  # a claim or encounter withdrawn shows no service
    npis = {npi for ref in _references(resource) if (npi := _npi(ref, npi_of)) is not None}
    days = _service_days(resource)
    return [ServiceFact(member_id, npi, day) for npi in sorted(npis) for day in sorted(days)]


def services_shown(records: ServiceRecords) -> Iterator[ServiceFact]:
    """Every service the plan's own claims and encounters show, the providers' NPIs read
    from its Practitioners and Organizations first."""
    npi_of = {
        ref: npi for ref, body in records.providers() if (npi := npi_of_provider(body)) is not None
    }
    for member_id, body in records.services():
        yield from service_facts(body, member_id, npi_of)
