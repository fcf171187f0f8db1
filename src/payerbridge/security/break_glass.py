"""Masked by default, seen under break-glass (ADR 0038, ADR 0046): the console shows a
member's identifiers masked; an operator whose role may see them asks for a grant, for a
reason and a few minutes, in their own name. Where the plan asks a second person
(``BreakGlassPolicy.needs_approval``) the grant is a request until another such
operator approves it. The grant, its approval, every refusal and every page shown under
it are audited.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import Conflict, Forbidden, InvalidInput, Issue, NotFound
from payerbridge.security.model import UnmaskGrant
from payerbridge.security.operator_accounts import SignedIn
from payerbridge.security.operators import BreakGlassPolicy
from payerbridge.security.unit import OperatorUnit

__all__ = [
    "MAX_MINUTES",
    "ApproveUnmasking",
    "AskUnmasking",
    "BreakGlassPolicy",
    "UnmaskGrant",
    "active_grant",
    "approve_unmasking",
    "grant_unmasking",
    "masked",
    "pending_requests",
]

MAX_MINUTES = 60
# How long a request waits for a second operator before it lapses.
APPROVAL_WINDOW = timedelta(minutes=60)
_MAX_REASON = 500
_SHOWN = 4  # the last characters a masked identifier keeps, to tell two apart


def masked(value: str | None) -> str:
    """``value`` with all but its last few characters hidden (short ones wholly)."""
    if not value:
        return ""
    if len(value) <= 2 * _SHOWN:
        return "•" * len(value)
    return "•" * (len(value) - _SHOWN) + value[-_SHOWN:]


@dataclass(frozen=True)
class AskUnmasking:
    """``signed_in`` asks to see masked identifiers for ``minutes``, saying why."""

    signed_in: SignedIn
    reason: str
    minutes: int


@dataclass(frozen=True)
class ApproveUnmasking:
    """``signed_in`` approves another operator's request ``grant_id``."""

    signed_in: SignedIn
    grant_id: str


def grant_unmasking(command: AskUnmasking, uow: OperatorUnit) -> UnmaskGrant:
    """Grant the operator sight of masked identifiers for their minutes (a request
    waiting for a second operator, where the plan asks one); Forbidden, audited, when
    their role may not see identifiers."""
    signed_in, minutes = command.signed_in, command.minutes
    reason = command.reason.strip()
    problems = []
    if not reason:
        problems.append(Issue("say why you must see the identifiers", "reason"))
    elif len(reason) > _MAX_REASON:
        problems.append(Issue(f"a reason is at most {_MAX_REASON} characters", "reason"))
    if not 1 <= minutes <= MAX_MINUTES:
        problems.append(Issue(f"a grant lasts 1 to {MAX_MINUTES} minutes", "minutes"))
    if problems:
        raise InvalidInput(problems[0].text, issues=problems)
    policy = uow.break_glass
    refused = policy.refusal(signed_in.operator.role)
    if refused is not None:
        _refuse(uow, signed_in, "console.break-glass", signed_in.operator.name, refused)
    with uow:
        now = uow.now
        pending = policy.needs_approval
        lasts = APPROVAL_WINDOW if pending else timedelta(minutes=minutes)
        grant = UnmaskGrant(
            uow.new_id(),
            signed_in.operator.name,
            reason,
            now,
            now + lasts,
            needs_approval=pending,
            minutes=minutes,
        )
        uow.accounts.add_grant(uow, grant)
        detail = {"grant": grant.id, "minutes": minutes, "reason": reason, "pending": pending}
        uow.record(_event(uow.now, signed_in, "console.break-glass", grant.operator, detail))
    return grant


def approve_unmasking(command: ApproveUnmasking, uow: OperatorUnit) -> UnmaskGrant:
    """An operator approves another's break-glass request: it is in force for its
    minutes from now. Forbidden (audited) for their own request or a role that may not
    break the glass; NotFound, or Conflict once approved or lapsed."""
    signed_in, grant_id = command.signed_in, command.grant_id
    grant = uow.accounts.grant(grant_id[:64])
    if grant is None or not grant.needs_approval:
        raise NotFound(f"no break-glass request has the id '{grant_id[:64]}'")
    refused = uow.break_glass.refusal(signed_in.operator.role)
    if refused is None and grant.operator == signed_in.operator.name:
        refused = "a second operator approves a break-glass request, not the one who asked"
    if refused is not None:
        _refuse(uow, signed_in, "console.break-glass-approval", grant.operator, refused)
    with uow:
        until = uow.now + timedelta(minutes=grant.minutes or MAX_MINUTES)
        approved = uow.accounts.approve_grant(
            uow, grant.id, by=signed_in.operator.name, expires_at=until
        )
        if approved is None:
            text = "the request was approved already, or lapsed: the operator asks again"
            raise Conflict(text, issues=[Issue(text, "grant", "conflict")])
        detail = {"grant": grant.id, "minutes": grant.minutes}
        uow.record(
            _event(uow.now, signed_in, "console.break-glass-approval", grant.operator, detail)
        )
    return approved


def pending_requests(uow: OperatorUnit) -> tuple[UnmaskGrant, ...]:
    """Break-glass requests waiting for a second operator."""
    return uow.accounts.pending_grants(now=uow.clock())


def active_grant(signed_in: SignedIn | None, uow: OperatorUnit) -> UnmaskGrant | None:
    """The operator's grant in force now, if any."""
    if signed_in is None:
        return None
    return uow.accounts.active_grant(signed_in.operator.name, now=uow.clock())


def _refuse(uow: OperatorUnit, signed_in: SignedIn, action: str, about: str, text: str) -> None:
    """Audit the refusal in a transaction of its own, then raise Forbidden saying why."""
    with uow:
        detail = {"role": signed_in.operator.role.value, "why": text}
        refused = replace(_event(uow.now, signed_in, action, about, detail), outcome="failure")
        uow.record(refused)
    raise Forbidden(text, issues=[Issue(text, "role", "forbidden")])


def _event(
    at: datetime, signed_in: SignedIn, action: str, about: str, detail: dict[str, Any]
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=signed_in.actor,
        action=action,
        entity_type="Operator",
        entity_id=about,
        outcome="success",
        detail=detail,
    )
