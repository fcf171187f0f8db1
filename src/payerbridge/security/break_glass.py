"""Masked by default, seen under break-glass (ADR 0038): the console shows a member's
identifiers masked; an operator who must see them asks for a grant, for a reason and a
few minutes, in their own name. The grant and every page shown under it are audited.
"""

from __future__ import annotations

from datetime import timedelta

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import InvalidInput, Issue
from payerbridge.security.operator_accounts import OperatorPorts, SignedIn
from payerbridge.security.operators import UnmaskGrant

__all__ = ["MAX_MINUTES", "UnmaskGrant", "active_grant", "grant_unmasking", "masked"]

MAX_MINUTES = 60
_MAX_REASON = 500
_SHOWN = 4  # the last characters a masked identifier keeps, to tell two apart


def masked(value: str | None) -> str:
    """``value`` with all but its last few characters hidden (short ones wholly)."""
    if not value:
        return ""
    if len(value) <= 2 * _SHOWN:
        return "•" * len(value)
    return "•" * (len(value) - _SHOWN) + value[-_SHOWN:]


def grant_unmasking(
    ports: OperatorPorts, signed_in: SignedIn, *, reason: str, minutes: int
) -> UnmaskGrant:
    """Grant ``signed_in``'s operator sight of masked identifiers for ``minutes``."""
    reason = reason.strip()
    problems = []
    if not reason:
        problems.append(Issue("say why you must see the identifiers", "reason"))
    elif len(reason) > _MAX_REASON:
        problems.append(Issue(f"a reason is at most {_MAX_REASON} characters", "reason"))
    if not 1 <= minutes <= MAX_MINUTES:
        problems.append(Issue(f"a grant lasts 1 to {MAX_MINUTES} minutes", "minutes"))
    if problems:
        raise InvalidInput(problems[0].text, issues=problems)
    with ports.transactions.begin() as unit:
        now = unit.now
        grant = UnmaskGrant(
            unit.new_id(), signed_in.operator.name, reason, now, now + timedelta(minutes=minutes)
        )
        ports.accounts.add_grant(unit, grant)
        unit.record(
            AuditEvent(
                at=now,
                actor=signed_in.actor,
                action="console.break-glass",
                entity_type="Operator",
                entity_id=signed_in.operator.name,
                outcome="success",
                detail={"grant": grant.id, "minutes": minutes, "reason": reason},
            )
        )
    return grant


def active_grant(ports: OperatorPorts, signed_in: SignedIn | None) -> UnmaskGrant | None:
    """The operator's grant in force now, if any."""
    if signed_in is None:
        return None
    return ports.accounts.active_grant(signed_in.operator.name, now=ports.clock())
