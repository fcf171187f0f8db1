"""A provider's attribution list as PDex 2.2's ``pdex-provider-group`` Group (ADR 0059):
the members attributed to the provider on the day it is read, each with the period of
her attribution; members opted out of the provider are not listed and are counted in
``base-ext-members-opted-out``. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.provider_access.model import Attribution
from payerbridge.timestamps import utc_iso
from payerbridge.types import MemberId

__all__ = [
    "PROVIDER_GROUP_PROFILE",
    "ProviderGroup",
    "group_id_of",
    "holding",
    "provider_group",
    "provider_of",
]

PROVIDER_GROUP_PROFILE = (
    "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-group|2.2.0"
)
_PDEX = "http://hl7.org/fhir/us/davinci-pdex"
_ATR = "http://hl7.org/fhir/us/davinci-atr/StructureDefinition"
_PREFIX = "provider-"


def group_id_of(provider_npi: str) -> str:
    """The id of a provider's Group: one per provider, by its NPI."""
    return f"{_PREFIX}{provider_npi}"


def provider_of(group_id: str) -> str | None:
    """The NPI whose Group ``group_id`` is (None: not a provider's Group's id)."""
    npi = group_id.removeprefix(_PREFIX)
    return npi if group_id.startswith(_PREFIX) and npi.isdigit() and len(npi) == 10 else None


@dataclass(frozen=True)
class ProviderGroup:
    """What a provider's Group shows on ``day``: its members (attributed and not opted
    out) with their attributions that hold that day, and how many were opted out."""

    provider_npi: str
    day: date
    attributions: tuple[Attribution, ...]  # the listed members' attributions holding on day
    opted_out: int
    plan_name: str
    plan_npi: str


def _member(member: MemberId, spans: list[Attribution]) -> dict[str, object]:
    start = min(a.start for a in spans)
    end = max(a.end for a in spans)
    return {
        "entity": {"reference": f"Patient/{member}"},
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "inactive": False,
    }


def provider_group(group: ProviderGroup, *, updated: datetime) -> dict[str, object]:
    """The Group as PDex 2.2's ``pdex-provider-group`` profile has it."""
    by_member: dict[MemberId, list[Attribution]] = {}
    for attribution in sorted(group.attributions):
        by_member.setdefault(attribution.member_id, []).append(attribution)
    npi = {"system": NPI_SYSTEM, "value": group.provider_npi}
    return {
        "resourceType": "Group",
        "id": group_id_of(group.provider_npi),
        "meta": {"lastUpdated": utc_iso(updated), "profile": [PROVIDER_GROUP_PROFILE]},
        "extension": [
            {"url": f"{_ATR}/ext-attributionListStatus", "valueCode": "final"},
            {
                "url": f"{_PDEX}/StructureDefinition/base-ext-members-opted-out",
                "valueQuantity": {"value": group.opted_out},
            },
        ],
        "identifier": [npi],
        "active": True,
        "type": "person",
        "actual": True,
        "code": {
            "coding": [
                {"system": f"{_PDEX}/CodeSystem/PdexMultiMemberMatchResultCS", "code": "match"}
            ]
        },
        "name": f"Members attributed to provider {group.provider_npi} on {group.day}",
        "quantity": len(by_member),
        "managingEntity": {
            "identifier": {"system": NPI_SYSTEM, "value": group.plan_npi},
            "display": group.plan_name,
        },
        "characteristic": [
            {
                "code": {
                    "coding": [
                        {
                            "system": f"{_PDEX}/CodeSystem/PdexMemberAttributionCS",
                            "code": "pdexprovidergroup",
                            "display": "PDex Provider Group",
                        }
                    ]
                },
                "valueReference": {"identifier": npi},
                "exclude": False,
                "period": {"start": group.day.isoformat(), "end": group.day.isoformat()},
            }
        ],
        "member": [_member(member, spans) for member, spans in sorted(by_member.items())],
    }


def holding(
    attributions: Iterable[Attribution], members: Iterable[MemberId], day: date
) -> tuple[Attribution, ...]:
    """The attributions of ``members`` that hold on ``day``."""
    wanted = set(members)
    return tuple(a for a in attributions if a.member_id in wanted and a.holds_on(day))
