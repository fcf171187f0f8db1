"""Provider Access for operators (ADR 0059): a member's opt-out choices recorded and
read, and attribution derived again: the same use cases as ``payerbridge opt-outs …`` and
``payerbridge attribution derive``, each audited in the calling client's name. A
provider reads its own Group and exports it under ``/fhir`` (``routers/bulk.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import ProviderAccessUnitDep
from payerbridge.provider_access.model import Choice, OptOutReason, OptOutScope, is_opted_out
from payerbridge.provider_access.service import (
    DeriveAttribution,
    RecordChoice,
    derive_attribution,
    record_choice,
)
from payerbridge.timestamps import utc_iso
from payerbridge.types import MemberId

__all__ = ["router"]

router = APIRouter(
    prefix="/provider-access", default_response_class=JsonResponse, tags=["provider-access"]
)


class ChoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    member_id: str = Field(min_length=1, max_length=64, description="The member's Patient id.")
    choice: Literal["opt-out", "opt-in"]
    scope: OptOutScope = OptOutScope.GLOBAL
    provider_npi: str | None = Field(
        default=None, min_length=10, max_length=10, description="For a provider-specific choice."
    )
    reason: OptOutReason | None = None
    effective: date | None = Field(default=None, description="In force from this day; none: now.")


class DeriveBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # false is no number of days

    look_back_days: int = Field(default=730, ge=0, le=3660)


@router.post("/opt-outs", status_code=201)
def record_opt_out(
    body: ChoiceBody, uow: ProviderAccessUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """A member's opt-out of Provider Access, or her opt-in after one (404: no such
    member; 422: a provider-specific choice without its provider, or another with one)."""
    effective = (
        datetime(body.effective.year, body.effective.month, body.effective.day, tzinfo=UTC)
        if body.effective is not None
        else None
    )
    seq = record_choice(
        RecordChoice(
            MemberId(body.member_id),
            Choice(body.choice),
            body.scope,
            f"api:{operator.client_id}",
            body.provider_npi,
            body.reason,
            effective,
        ),
        uow,
    )
    return {"seq": seq, "member_id": body.member_id, "choice": body.choice, "scope": body.scope}


@router.get("/members/{member_id}/opt-outs")
def member_opt_outs(
    member_id: str, uow: ProviderAccessUnitDep, _operator: OperatorDep
) -> dict[str, Any]:
    """The member's choices in the order recorded, and whether, now, they keep her data
    from every provider (a provider-specific one reaches one provider only)."""
    member = MemberId(member_id[:64])
    choices = uow.opt_outs.of_members([member]).get(member, [])
    return {
        "member_id": member,
        "opted_out_of_all": is_opted_out(choices, "", uow.clock()),
        "choices": [
            {
                "seq": c.seq,
                "choice": c.choice,
                "scope": c.scope,
                "provider_npi": c.provider_npi,
                "reason": c.reason,
                "effective": utc_iso(c.effective),
            }
            for c in choices
        ],
    }


@router.post("/attribution/derive")
def derive(body: DeriveBody, uow: ProviderAccessUnitDep, operator: OperatorDep) -> dict[str, Any]:
    """Attribution derived again from the plan's own claims and encounters."""
    run = derive_attribution(
        DeriveAttribution(body.look_back_days, f"api:{operator.client_id}"), uow
    )
    return run.to_json()
