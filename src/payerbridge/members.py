"""A member as a request describes her: her demographics and what her insurance cards say.

The exchange asks with them, the FHIR wire format carries them (``$member-match``'s
MemberPatient and Coverages) and identity matches them: a kernel type, so that none of
the three imports another for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

__all__ = ["Address", "CoverageCard", "MemberDemographics"]


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...]
    city: str | None
    state: str | None
    postal_code: str | None


@dataclass(frozen=True)
class MemberDemographics:
    given: tuple[str, ...]
    family: str
    birth_date: date
    gender: str
    address: Address | None = None
    phone: str | None = None


@dataclass(frozen=True)
class CoverageCard:
    """What a member's insurance card says: member id and/or subscriber id."""

    member_id: str | None
    subscriber_id: str | None
    relationship: str
    start: date | None = None
