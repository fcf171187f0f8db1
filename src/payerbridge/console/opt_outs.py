"""Provider Access opt-outs (ADR 0059): a member's choices, found by our member id, and
an operator recording her opt-out, or her opt-in after one, as she asked by phone or on
paper. The same use case as ``payerbridge opt-outs`` and ``POST /provider-access/opt-outs``,
audited in the operator's name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import FormDep, IntervenerVisit, ReaderVisit, Visit
from payerbridge.console.pages import NO_FLASH, Flash
from payerbridge.errors import InvalidInput, PayerBridgeError
from payerbridge.provider_access.model import (
    Choice,
    OptOutChoice,
    OptOutReason,
    OptOutScope,
    is_opted_out,
)
from payerbridge.provider_access.service import RecordChoice, record_choice
from payerbridge.types import MemberId

__all__ = ["router"]

router = APIRouter()

MemberQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9.\-]*$")]


@router.get("/opt-outs")
def opt_outs_page(visit: ReaderVisit, member_id: MemberQuery = None) -> Response:
    done = visit.request.query_params.get("done", "")
    notice = f"the member's {done} was recorded" if done in ("opt-out", "opt-in") else None
    return _view(visit, member_id, Flash(notice=notice))


def _command(form: FormDep, actor: str) -> RecordChoice:
    """The form as the use case takes it; InvalidInput naming what is not a PDex code."""
    try:
        reason = str(form.get("reason") or "")
        return RecordChoice(
            MemberId(str(form.get("member_id") or "")[:64]),
            Choice(str(form.get("choice") or "")),
            OptOutScope(str(form.get("scope") or OptOutScope.GLOBAL)),
            actor,
            str(form.get("provider_npi") or "").strip() or None,
            OptOutReason(reason) if reason else None,
        )
    except ValueError:
        raise InvalidInput("choose a choice, a scope and a reason from the lists") from None


@router.post("/opt-outs")
def record(visit: IntervenerVisit, form: FormDep) -> Response:
    uow, found = visit.platform.units.provider_access(), visit.signed_in
    member_id = str(form.get("member_id") or "")[:64]
    try:
        command = _command(form, found.actor)
        record_choice(command, uow)
    except PayerBridgeError as exc:
        return _view(visit, member_id, Flash.refused(exc))
    return RedirectResponse(
        f"/console/opt-outs?member_id={command.member_id}&done={command.choice}", 303
    )


def _view(visit: Visit, member_id: str | None, flash: Flash = NO_FLASH) -> Response:
    uow = visit.platform.units.provider_access()
    choices: list[OptOutChoice] = []
    if member_id:
        choices = uow.opt_outs.of_members([MemberId(member_id)]).get(MemberId(member_id), [])
    context = {
        "member_id": member_id or "",
        "choices": choices,
        "opted_out_of_all": bool(choices) and is_opted_out(choices, "", uow.clock()),
        "scopes": list(OptOutScope),
        "reasons": list(OptOutReason),
        "notice": flash.notice,
        "error": flash.error,
    }
    return visit.render("opt_outs.html", context, status_code=flash.status_code)
