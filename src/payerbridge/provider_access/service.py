"""Provider Access's use cases (ADR 0059): attribution derived from the plan's claims
and loaded from rosters, the members' opt-out choices, and a provider's Group as its
organization reads it. Each write is one transaction with its audit event (ids and
counts, never member data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import Forbidden, InvalidInput, Issue, NotFound
from payerbridge.npi import is_valid_npi
from payerbridge.provider_access.groups import ProviderGroup, holding, provider_group, provider_of
from payerbridge.provider_access.model import (
    Choice,
    OptOutChoice,
    OptOutReason,
    OptOutScope,
    derive_attributions,
)
from payerbridge.provider_access.rosters import RosterEntry, roster_attributions
from payerbridge.provider_access.treatment import services_shown
from payerbridge.provider_access.unit import ProviderAccessUnit
from payerbridge.security.model import Principal, require_scope, resource_scope
from payerbridge.types import MemberId

__all__ = [
    "DeriveAttribution",
    "LoadRoster",
    "ProviderGroupRead",
    "RecordChoice",
    "attributed_provider_group",
    "derive_attribution",
    "load_roster",
    "provider_group_today",
    "read_provider_group",
    "record_choice",
]

MAX_LOOK_BACK_DAYS = 3660  # ten years: further back is a typo, not a policy


@dataclass(frozen=True)
class DeriveAttribution:
    """Attribution derived again from the plan's own claims and encounters."""

    look_back_days: int
    actor: str


@dataclass(frozen=True)
class AttributionRun:
    attributions: int
    providers: int
    members: int
    replaced: int

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


def _event(
    uow: ProviderAccessUnit, actor: str, action: str, entity: str, detail: Any
) -> AuditEvent:
    return AuditEvent(uow.now, actor, action, "Attribution", entity, "success", detail=detail)


def derive_attribution(command: DeriveAttribution, uow: ProviderAccessUnit) -> AttributionRun:
    """Every claims-based attribution replaced by what the claims show now (rosters
    are left as they are)."""
    if not 0 <= command.look_back_days <= MAX_LOOK_BACK_DAYS:
        raise InvalidInput(f"the look-back is 0 to {MAX_LOOK_BACK_DAYS} days")
    derived = derive_attributions(
        services_shown(uow.records), look_back_days=command.look_back_days
    )
    run = AttributionRun(
        len(derived),
        len({a.provider_npi for a in derived}),
        len({a.member_id for a in derived}),
        0,
    )
    with uow:
        replaced = uow.attributions.replace_derived(uow, derived)
        run = AttributionRun(run.attributions, run.providers, run.members, replaced)
        detail = {**run.to_json(), "look_back_days": command.look_back_days}
        uow.record(_event(uow, command.actor, "attribution.derive", "claims", detail))
    return run


@dataclass(frozen=True)
class LoadRoster:
    """A roster's entries (``rosters``), replacing what the roster of that name gave."""

    name: str
    entries: tuple[RosterEntry, ...]
    actor: str


def load_roster(command: LoadRoster, uow: ProviderAccessUnit) -> AttributionRun:
    """The roster kept, every member it names being one the plan holds (else nothing
    is kept: a roster naming a stranger is a roster for another plan)."""
    name = command.name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("a roster is named, in 1 to 120 characters")
    attributions = roster_attributions(command.entries, name)
    named = {a.member_id for a in attributions}
    unknown = len(named - uow.records.known_members(named))
    if unknown:
        raise InvalidInput(
            f"the roster {name} names {unknown} members the plan holds no Patient for; "
            "nothing was loaded"
        )
    run = AttributionRun(
        len(attributions), len({a.provider_npi for a in attributions}), len(named), 0
    )
    with uow:
        replaced = uow.attributions.replace_roster(uow, name, attributions)
        run = AttributionRun(run.attributions, run.providers, run.members, replaced)
        uow.record(_event(uow, command.actor, "attribution.roster", name, run.to_json()))
    return run


@dataclass(frozen=True)
class RecordChoice:
    """A member's opt-out of Provider Access, or her opt-in after one."""

    member_id: MemberId
    choice: Choice
    scope: OptOutScope
    actor: str
    provider_npi: str | None = None
    reason: OptOutReason | None = None
    effective: datetime | None = None  # None: now


def record_choice(command: RecordChoice, uow: ProviderAccessUnit) -> int:
    """The choice kept, in force from ``effective``; its sequence number."""
    specific = command.scope is OptOutScope.PROVIDER_SPECIFIC
    if specific and not (command.provider_npi and is_valid_npi(command.provider_npi)):
        raise InvalidInput("a provider-specific choice names the provider by a valid NPI")
    if not specific and command.provider_npi is not None:
        raise InvalidInput(f"a {command.scope} choice names no provider")
    if not uow.records.known_members([command.member_id]):
        raise NotFound("the plan holds no Patient by that id")
    effective = command.effective or uow.clock()
    choice = OptOutChoice(
        command.member_id,
        command.choice,
        command.scope,
        effective,
        0,
        command.provider_npi,
        command.reason,
    )
    with uow:
        seq = uow.opt_outs.record(uow, choice, command.actor)
        detail = {
            "member": command.member_id,
            "choice": command.choice,
            "scope": command.scope,
            "provider_npi": command.provider_npi,
            "seq": seq,
        }
        uow.record(
            AuditEvent(
                uow.now,
                command.actor,
                f"provider-access.{command.choice}",
                "Patient",
                command.member_id,
                "success",
                detail=detail,
            )
        )
    return seq


@dataclass(frozen=True)
class ProviderGroupRead:
    """A provider organization's client (its NPI proven, ADR 0026) reading a Group."""

    principal: Principal
    group_id: str


def read_provider_group(asked: ProviderGroupRead, uow: ProviderAccessUnit) -> dict[str, Any]:
    """The provider's own Group as it stands today; another provider's, or none, is
    not found (never forbidden: which Groups exist is each provider's own business)."""
    principal = asked.principal
    if principal.patient is not None:
        text = "a member-scoped token reads one member's records; a Group holds many"
        raise Forbidden(text, issues=[Issue(text, "patient", "forbidden")])
    require_scope(principal, resource_scope("Group", "r"))
    npi = provider_of(asked.group_id)
    if npi is None or not principal.npi or npi != principal.npi:
        raise NotFound(f"Group/{asked.group_id[:80]} does not exist")
    group = provider_group_today(npi, uow)
    with uow:  # who read which members' list, and for what (ids and counts only)
        detail = {"purpose": "TREAT", "provider_npi": npi, "members": group["quantity"]}
        uow.record(
            AuditEvent(
                uow.now,
                principal.client_id,
                "provider-access.read",
                "Group",
                str(group["id"]),
                "success",
                detail=detail,
            )
        )
    return group


def attributed_provider_group(
    principal: Principal, uow: ProviderAccessUnit
) -> dict[str, Any] | None:
    """The caller's own provider Group, found by a Group search: only when its NPI is
    attributed some member today (a payer searching its match results finds none)."""
    if principal.patient is not None or not principal.npi:
        return None
    decided = uow.reads.decide(principal.npi, uow.clock())
    if not decided.attributions:
        return None
    return provider_group_today(principal.npi, uow)


def provider_group_today(provider_npi: str, uow: ProviderAccessUnit) -> dict[str, Any]:
    """``provider_npi``'s Group today: its members attributed and not opted out."""
    at = uow.clock()
    decided = uow.reads.decide(provider_npi, at)
    group = ProviderGroup(
        provider_npi,
        decided.day,
        holding(decided.attributions, decided.members, decided.day),
        decided.opted_out,
        uow.us.name,
        uow.us.npi,
    )
    return provider_group(group, updated=at)
