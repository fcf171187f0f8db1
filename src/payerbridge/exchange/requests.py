"""The exchange request as kept with the exchange: the JSON document of the accepted
``POST /exchanges`` body, read back into the domain ``ExchangeRequest`` by the workflow.

The API validates the body before it is kept (``api.schemas.ExchangeCreate``), so this
reads a document known to be well formed; optional fields may be absent or null. A unit
test holds the two readings equal.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from payerbridge.exchange.model import (
    Address,
    ConsentGrant,
    CoverageCard,
    ExchangeRequest,
    MemberDemographics,
)
from payerbridge.types import PartnerId

__all__ = ["request_from_document"]


def request_from_document(document: dict[str, Any]) -> ExchangeRequest:
    member = document["member"]
    address = member.get("address")
    consent = document.get("consent")
    return ExchangeRequest(
        old_payer=PartnerId(document["old_payer"]),
        member=MemberDemographics(
            tuple(member["given"]),
            member["family"],
            date.fromisoformat(member["birth_date"]),
            member["gender"],
            _address(address) if address else None,
            member.get("phone"),
        ),
        old_coverage=_card(document["old_coverage"]),
        new_coverage=_card(document["new_coverage"]),
        consent=_grant(consent) if consent else None,
        consent_id=document.get("consent_id"),
    )


def _address(address: dict[str, Any]) -> Address:
    return Address(
        tuple(address.get("line") or ()),
        address.get("city"),
        address.get("state"),
        address.get("postal_code"),
    )


def _card(card: dict[str, Any]) -> CoverageCard:
    start = card.get("start")
    return CoverageCard(
        card.get("member_id"),
        card.get("subscriber_id"),
        card.get("relationship") or "self",
        date.fromisoformat(start) if start else None,
    )


def _grant(consent: dict[str, Any]) -> ConsentGrant:
    return ConsentGrant(
        consent["policy"],
        date.fromisoformat(consent["start"]),
        date.fromisoformat(consent["end"]),
        consent["source_reference"],
    )
