"""Consents: a member's opt-in captured by us (new payer), and revocation on either side.

Consents presented to us at ``$member-match`` (old payer) are recorded there; both kinds
are read and revoked here. A consent is shown to, and revoked by, operators and the
client that recorded it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import Caller, SubmitterDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.schemas import ConsentCapture
from payerbridge.api.units import OptInUnitDep
from payerbridge.consent.model import ConsentRole, StoredConsent
from payerbridge.errors import Issue, NotFound, UnprocessableRequest
from payerbridge.exchange.intake.opt_in import OptIn
from payerbridge.exchange.intake.submission import capture_opt_in
from payerbridge.exchange.operations.interventions import revoke_and_stop
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.logging import current_request_id
from payerbridge.timestamps import utc_iso
from payerbridge.types import MemberId, PartnerId

__all__ = ["consent_public", "router"]

router = APIRouter(prefix="/consents", default_response_class=JsonResponse, tags=["consents"])


class RevocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    revoked_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who asked (e.g. 'member', 'member-representative'); default the caller.",
    )


def consent_public(consent: StoredConsent) -> dict[str, Any]:
    record = consent.record
    return {
        "id": record.consent_id,
        "role": consent.role.value,
        "member_id": record.member_id,
        "old_payer": consent.partner_id,
        "policy": record.policy.value,
        "period": {"start": utc_iso(record.period_start), "end": utc_iso(record.period_end)},
        "source_npi": record.source_npi,
        "recipient_npis": list(record.recipient_npis),
        "status": "revoked" if record.revoked_at else "active",
        "revoked_at": utc_iso(record.revoked_at) if record.revoked_at else None,
        "revoked_by": record.revoked_by,
        "recorded_by": record.client_id,
        "created_at": utc_iso(consent.created_at),
        "policy_version": record.policy_version,
        "resource_sha256": record.resource_hash,
        "resource": consent.resource,
    }


def _visible(uow: ExchangeUnit, caller: Caller, consent_id: str) -> StoredConsent:
    stored = uow.consents.get(consent_id)
    if stored is None:
        raise NotFound(f"Consent/{consent_id[:64]} does not exist")
    if not caller.is_operator and caller.client_id != stored.record.client_id:
        # Another client's consent answers as a missing one: its existence is not told.
        raise NotFound(f"Consent/{consent_id[:64]} does not exist")
    return stored


@router.post("", status_code=201)
def capture_consent(
    body: ConsentCapture,
    uow: OptInUnitDep,
    caller: SubmitterDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """Capture a member's opt-in to payer-to-payer exchange with one old payer."""
    partner = uow.partners.get(PartnerId(body.old_payer))
    if partner is None:
        raise UnprocessableRequest(
            f"no partner is registered with id '{body.old_payer}'",
            issues=[Issue("register the old payer first", "old_payer", "not-found")],
        )
    opt_in = OptIn(body.to_domain(), MemberId(body.member_id), partner, caller.client_id)
    stored = capture_opt_in(uow, opt_in, request_id=current_request_id())
    response.headers["Location"] = str(request.url_for("get_consent", consent_id=stored.consent_id))
    return consent_public(stored)


@router.get("")
def list_consents(
    uow: OptInUnitDep,
    caller: SubmitterDep,
    member_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> list[dict[str, Any]]:
    """A member's consents (both roles, newest first) that the caller may see."""
    found = [
        consent
        for role in ConsentRole
        for consent in uow.consents.for_member(MemberId(member_id), role)
        if caller.is_operator or caller.client_id == consent.record.client_id
    ]
    found.sort(key=lambda c: c.created_at, reverse=True)
    return [consent_public(c) for c in found]


@router.get("/{consent_id}", name="get_consent")
def get_consent(consent_id: str, uow: OptInUnitDep, caller: SubmitterDep) -> dict[str, Any]:
    return consent_public(_visible(uow, caller, consent_id))


@router.post("/{consent_id}/$revoke")
def revoke(
    consent_id: str,
    uow: OptInUnitDep,
    caller: SubmitterDep,
    body: RevocationIn | None = None,
) -> dict[str, Any]:
    """Revoke now. Every later request under the consent is refused; every unfinished
    exchange under a member's opt-in is ``blocked`` (reason ``revoked``) in the same
    transaction. Revoking again changes nothing."""
    stored = _visible(uow, caller, consent_id)
    by = (body.revoked_by if body and body.revoked_by else None) or caller.client_id
    revoked, blocked = revoke_and_stop(
        uow, stored.consent_id, by=by, request_id=current_request_id()
    )
    return {**consent_public(revoked), "blocked_exchanges": blocked}
