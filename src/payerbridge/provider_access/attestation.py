"""A provider's treatment attestation (PDex 2.2 ``provider-treatment-relationship-consent``,
ADR 0059), checked when ``$provider-member-match`` matched its member. Pure.

An attestation is verified when it is active, attests a patient-privacy treatment
relationship, is signed by the requesting provider (a performer or the organization
carrying its NPI: a provider attests for itself, never for another), is dated no later
than now, and its provision's period, if any, holds now. A verified attestation
attributes the member to the provider from today until the period's end, or for
``ATTESTED_DAYS`` when it gives none: a treatment relationship the plan's own claims do
not show is taken on the provider's word for a bounded time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.timestamps import day_of, parse_instant

__all__ = ["ATTESTED_DAYS", "Attested", "verify_attestation"]

ATTESTED_DAYS = 365
_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")


@dataclass(frozen=True)
class Attested:
    """A verified attestation: the days it attributes its member to the provider."""

    start: date
    end: date


def _npis(consent: Mapping[str, Any]) -> Iterator[str]:
    signers = [*(consent.get("performer") or ()), *(consent.get("organization") or ())]
    for signer in signers:
        identifier = signer.get("identifier") if isinstance(signer, dict) else None
        if isinstance(identifier, dict) and identifier.get("system") == NPI_SYSTEM:
            yield str(identifier.get("value"))


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_patient_privacy(consent: Mapping[str, Any]) -> bool:
    scope = consent.get("scope")
    codings = scope.get("coding") if isinstance(scope, dict) else None
    return any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == _SCOPE for c in codings or ()
    )


def verify_attestation(
    consent: Mapping[str, Any], provider_npi: str, now: datetime, today: date
) -> Attested | str:
    """The attestation's attributed days, or why it is not verified (no member data)."""
    if consent.get("status") != "active":
        return "the attestation is not active"
    if not _is_patient_privacy(consent):
        return "the attestation's scope is not patient-privacy"
    signed = set(_npis(consent))
    if not provider_npi or signed != {provider_npi}:
        return "the attestation is not signed by the requesting provider's NPI alone"
    dated = parse_instant(str(consent.get("dateTime") or "")) if consent.get("dateTime") else None
    if dated is None and (day := day_of(consent.get("dateTime"))) is not None:
        dated = datetime.combine(day, datetime.min.time(), now.tzinfo)
    if dated is None or dated > now:
        return "the attestation is not dated, or dated in the future"
    provision = _object(consent.get("provision"))
    period = _object(provision.get("period"))
    start, end = day_of(period.get("start")), day_of(period.get("end"))
    if (start is not None and start > today) or (end is not None and end < today):
        return "the attested treatment relationship does not hold today"
    last = end if end is not None else today + timedelta(days=ATTESTED_DAYS)
    return Attested(today, min(last, today + timedelta(days=ATTESTED_DAYS)))
