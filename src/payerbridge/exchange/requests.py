"""The exchange request as kept with the exchange: the JSON document of the accepted
``POST /exchanges`` body, read back into the domain ``ExchangeRequest`` by the workflow.

The API validates the body before it is kept (``api.schemas.ExchangeCreate``), so this
reads a document known to be well formed; optional fields may be absent or null. A unit
test holds the two readings equal.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from payerbridge.exchange.model import (
    ConsentGrant,
    ExchangeRequest,
)
from payerbridge.exchange.received.reconcile import member_key_of
from payerbridge.members import Address, CoverageCard, MemberDemographics
from payerbridge.types import PartnerId

__all__ = [
    "KEPT_REQUESTS",
    "MINIMISED",
    "KeptRequests",
    "minimised_request",
    "request_from_document",
    "request_member_id",
]

# The key a request cut to what its audit needs carries (ADR 0038): it is read by
# ``request_member_id`` only, never as a request again.
MINIMISED = "minimised"


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
        since=_since(document.get("since")),
    )


def _since(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


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


def minimised_request(document: dict[str, Any], *, keep_member: bool = True) -> dict[str, Any]:
    """``document`` cut to what the exchange's audit trail needs: the old payer, our
    member id (the entity its consent decisions are recorded about) unless the member
    was erased, and the opt-in's policy; no demographics, no other plan's identifiers."""
    if document.get(MINIMISED):
        kept = dict(document)
    else:
        consent = document.get("consent") or {}
        member = request_from_document(document).member_id
        kept = {MINIMISED: True, "old_payer": document.get("old_payer"), "member_id": member}
        kept["consent_policy"] = consent.get("policy")
    if not keep_member:
        kept["member_id"] = None
    return kept


def request_member_id(document: dict[str, Any]) -> str | None:
    """Our member id in a kept request, whole or minimised (None once erased)."""
    if document.get(MINIMISED):
        member: str | None = document.get("member_id")
        return member
    return request_from_document(document).member_id


class KeptRequests:
    """``compliance.ports.KeptRequests``: what the data lifecycle cuts of a kept request
    and whom it finds it is about, decided here for the store that purges and erases."""

    def minimised(self, document: dict[str, Any], *, keep_member: bool = True) -> dict[str, Any]:
        return minimised_request(document, keep_member=keep_member)

    def is_erased(self, document: dict[str, Any]) -> bool:
        return bool(document.get(MINIMISED)) and document.get("member_id") is None

    def member_id(self, document: dict[str, Any]) -> str | None:
        return request_member_id(document)

    def member_key(self, client_id: str, member_id: str) -> str:
        return member_key_of(client_id, member_id)


KEPT_REQUESTS = KeptRequests()
