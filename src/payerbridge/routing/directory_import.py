"""Importing a directory bundle (ADR 0062): each payer organization it describes is
compared with the partner registered under its id.

- Where only its endpoints changed (an address, a status, a priority, the versions),
  the change applies at once through ``enrol_partner`` (a re-pointed partner must answer
  first): the endpoints this directory gave are replaced, those an operator or the
  partner's ``.well-known`` gave are kept.
- What would change who the partner is or how we trust it (a new partner, whose NPI is
  only the directory's claim; another NPI; UDAP named or no longer named) is held as a
  proposal for an operator (ADR 0026: organizations are proven, not claimed); the whole
  entry waits, its endpoints too, since they may now be another organization's.

Importing the same bundle again changes nothing: an unchanged entry records no event
of its own, a proposal already held (or rejected) for the same entry is not made again.
Approving and rejecting proposals is ``directory_proposals``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import Issue, PayerBridgeError, StoreUnavailable
from payerbridge.routing.directory_bundle import (
    DirectoryBundle,
    DirectoryOrganization,
    read_directory_bundle,
)
from payerbridge.routing.endpoints import PartnerEndpoint
from payerbridge.routing.enrolment import EnrolPartner, enrol_partner
from payerbridge.routing.model import Partner, PartnerAuth
from payerbridge.routing.ports import (
    PartnerProposal,
    ProposalDecision,
    ProposalStatus,
)
from payerbridge.routing.unit import DirectoryUnit

__all__ = [
    "DirectoryImported",
    "ImportDirectory",
    "OrganizationImported",
    "import_directory",
    "merged_partner",
    "settle",
    "standing",
]

_SUPERSEDED = "the directory said something else of the organization in a later import"


@dataclass(frozen=True)
class ImportDirectory:
    """A directory bundle to import (the parsed JSON), named ``fallback_name`` when it
    has no identifier (its file's name), read as of ``now``, asked by ``actor``."""

    document: Any
    fallback_name: str
    now: datetime
    actor: str
    request_id: str | None = None


@dataclass(frozen=True)
class OrganizationImported:
    """What the import did with one organization: ``updated``, ``unchanged``,
    ``created-pending`` (a new partner held for approval), ``pending`` (a change held)
    or ``skipped``, with why and what changed."""

    partner_id: str | None
    entry: str
    outcome: str
    why: str | None = None
    changes: tuple[str, ...] = ()
    proposal_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id,
            "entry": self.entry,
            "outcome": self.outcome,
            "why": self.why,
            "changes": list(self.changes),
            "proposal_id": self.proposal_id,
        }


@dataclass(frozen=True)
class DirectoryImported:
    directory: str
    organizations: tuple[OrganizationImported, ...]
    not_ours: int  # entries passed over: other types, organizations and use cases
    issues: tuple[Issue, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "organizations": [o.to_json() for o in self.organizations],
            "not_ours": self.not_ours,
            "issues": [
                {"text": i.text, "expression": i.expression, "code": i.code} for i in self.issues
            ],
        }


def import_directory(command: ImportDirectory, uow: DirectoryUnit) -> DirectoryImported:
    """Read the bundle (UnprocessableRequest when unusable), apply the endpoint-only
    changes, hold the others as proposals, and audit it all in the caller's name."""
    bundle = read_directory_bundle(
        command.document, fallback_name=command.fallback_name, now=command.now
    )
    results: list[OrganizationImported] = []  # what this import changed
    again: list[OrganizationImported] = []  # unchanged, held already, or not applied
    held: list[_Held] = []
    for organization in bundle.organizations:
        outcome = _compare(organization, bundle, uow, command)
        if isinstance(outcome, _Held):
            held.append(outcome)
        elif outcome.outcome == "updated":
            results.append(outcome)
        else:
            again.append(outcome)
    with uow:  # each endpoint change was audited as it was applied
        proposed = [_hold(uow, bundle, each, command) for each in held]
        uow.record(*[_event(uow.now, bundle, r, command) for r in proposed])
        results += proposed
        uow.record(_summary(uow.now, bundle, results, again, command))
    skipped = [
        OrganizationImported(p.partner_id, p.entry, "skipped", p.why) for p in bundle.skipped
    ]
    ordered = sorted([*results, *again, *skipped], key=lambda r: (r.partner_id or "", r.entry))
    return DirectoryImported(bundle.directory, tuple(ordered), bundle.not_ours, bundle.issues)


def standing(partner: Partner | None) -> str | None:
    """The partner as an approval must still find it (its NPI, how we trust it, its
    endpoints), hashed; None for no partner."""
    if partner is None:
        return None
    said = {
        "npi": partner.npi,
        "auth": partner.auth.value,
        "endpoints": [e.to_json() for e in partner.endpoints],
    }
    text = json.dumps(said, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def merged_partner(before: Partner, organization: DirectoryOrganization, source: str) -> Partner:
    """``before`` with the endpoints ``source`` gave replaced by ``organization``'s; the
    others (an operator's, a ``.well-known`` file's) are kept and win an address both
    name. Its base URL is the first active endpoint by priority again."""
    kept = [e for e in before.endpoints if e.source != source]
    bases = {e.base for e in kept}
    given = [e for e in organization.endpoints if e.base not in bases]
    return replace(before, base_url="", endpoints=(*kept, *given))


@dataclass(frozen=True)
class _Held:
    """An organization whose entry waits for an operator, why, and the partner as it
    stands (None: none is registered)."""

    organization: DirectoryOrganization
    reasons: tuple[str, ...]
    before: Partner | None
    pending: PartnerProposal | None  # the directory's pending one, superseded by this one


def _compare(
    organization: DirectoryOrganization,
    bundle: DirectoryBundle,
    uow: DirectoryUnit,
    command: ImportDirectory,
) -> OrganizationImported | _Held:
    """What to do with one organization: done here (updated, unchanged, skipped, or held
    already), or the reasons to hold it with the partner as it stands."""
    partner_id, entry = organization.partner_id, organization.entry
    before = uow.partners.get(partner_id)
    why: str | None
    reasons = _held_for(organization, before)
    if reasons:
        # Read before the unit takes its connection (errors.SecondConnection).
        latest = uow.proposals.latest(partner_id, bundle.directory)
        if latest is not None and latest.organization.fingerprint == organization.fingerprint:
            if latest.status is ProposalStatus.PENDING:
                outcome = "created-pending" if before is None else "pending"
                why = "held already: " + "; ".join(latest.reasons)
                return OrganizationImported(partner_id, entry, outcome, why, (), latest.id)
            if latest.status is ProposalStatus.REJECTED:
                why = f"an operator rejected this entry (proposal {latest.id})"
                return OrganizationImported(partner_id, entry, "skipped", why, (), latest.id)
        pending = latest if latest and latest.status is ProposalStatus.PENDING else None
        return _Held(organization, reasons, before, pending)
    assert before is not None
    after = merged_partner(before, organization, bundle.source)
    changes = _endpoint_changes(before.endpoints, after.endpoints)
    # What the directory said before and held is not what it says now.
    pending = _pending(uow, bundle, organization)
    why = f"superseded proposal {pending.id}" if pending else None
    if not changes:
        if pending is not None:
            with uow:
                _supersede(uow, pending, command)
        return OrganizationImported(partner_id, entry, "unchanged", why)
    updated = OrganizationImported(partner_id, entry, "updated", why, tuple(changes))

    def audited() -> None:  # in the registration's transaction: applied means audited
        if pending is not None:
            _supersede(uow, pending, command)
        uow.record(_event(uow.now, bundle, updated, command))

    try:
        enrol_partner(EnrolPartner(after, command.actor, command.request_id, within=audited), uow)
    except StoreUnavailable:
        raise  # retryable: the import as a whole is
    except PayerBridgeError as exc:
        return OrganizationImported(partner_id, entry, "skipped", exc.text, tuple(changes))
    return updated


def _held_for(organization: DirectoryOrganization, before: Partner | None) -> tuple[str, ...]:
    """Why the organization's entry needs an operator's approval, if it does."""
    if before is None:
        return ("a new partner: its NPI is the directory's claim until an operator approves",)
    reasons = []
    if before.npi != organization.npi:
        reasons.append(f"the NPI changes from {before.npi} to {organization.npi}")
    if organization.udap and before.auth is not PartnerAuth.UDAP:
        reasons.append(f"the directory names UDAP as its trust framework (now {before.auth})")
    if not organization.udap and before.auth is PartnerAuth.UDAP:
        reasons.append("the directory no longer names UDAP as its trust framework")
    return tuple(reasons)


def _pending(
    uow: DirectoryUnit, bundle: DirectoryBundle, organization: DirectoryOrganization
) -> PartnerProposal | None:
    """This directory's pending proposal for the partner, which gives way to what the
    directory says now (read before the unit takes its connection)."""
    latest = uow.proposals.latest(organization.partner_id, bundle.directory)
    return latest if latest is not None and latest.status is ProposalStatus.PENDING else None


def _supersede(uow: DirectoryUnit, proposal: PartnerProposal, command: ImportDirectory) -> None:
    """Settle ``proposal`` as superseded in ``uow``'s transaction, audited."""
    decision = ProposalDecision(ProposalStatus.SUPERSEDED, command.actor, _SUPERSEDED)
    settle(uow, proposal, decision, command.request_id)


def settle(
    uow: DirectoryUnit,
    proposal: PartnerProposal,
    decision: ProposalDecision,
    request_id: str | None,
    **detail: Any,
) -> bool:
    """Settle ``proposal`` as ``decision`` says in ``uow``'s transaction, audited
    (``partner.proposal``, with ``detail``); False, with nothing recorded, when it was
    settled meanwhile."""
    if not uow.proposals.decide(uow, proposal.id, decision):
        return False
    uow.record(
        AuditEvent(
            at=uow.now,
            actor=decision.by,
            action="partner.proposal",
            entity_type="Partner",
            entity_id=proposal.partner_id,
            outcome=decision.status.value,
            request_id=request_id,
            detail={"proposal_id": proposal.id, "directory": proposal.directory, **detail},
        )
    )
    return True


def _hold(
    uow: DirectoryUnit, bundle: DirectoryBundle, held: _Held, command: ImportDirectory
) -> OrganizationImported:
    """Keep a proposal in ``uow`` (in its transaction), the directory's earlier pending
    one for the partner superseded."""
    organization, reasons, before = held.organization, held.reasons, held.before
    if held.pending is not None:
        _supersede(uow, held.pending, command)
    proposal = PartnerProposal(
        uow.new_id(),
        bundle.directory,
        organization,
        reasons,
        standing(before),
        uow.now,
        command.actor,
    )
    uow.proposals.add(uow, proposal)
    outcome = "created-pending" if before is None else "pending"
    return OrganizationImported(
        organization.partner_id, organization.entry, outcome, "; ".join(reasons), (), proposal.id
    )


def _endpoint_changes(
    before: tuple[PartnerEndpoint, ...], after: tuple[PartnerEndpoint, ...]
) -> list[str]:
    """What differs, endpoint by endpoint (by address)."""
    old = {e.base: e for e in before}
    new = {e.base: e for e in after}
    changes = [
        f"added {e.url} ({e.status.value}, priority {e.priority})"
        for e in after
        if e.base not in old
    ]
    changes += [f"removed {e.url}" for e in before if e.base not in new]
    for base, endpoint in new.items():
        previous = old.get(base)
        if previous is None or previous == endpoint:
            continue
        fields = ("priority", "status", "versions", "note", "url", "source")
        moved = [
            f"{name} {_shown(getattr(previous, name))} → {_shown(getattr(endpoint, name))}"
            for name in fields
            if getattr(previous, name) != getattr(endpoint, name)
        ]
        changes.append(f"{endpoint.url}: " + ", ".join(moved))
    return changes


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "-"
    return str(getattr(value, "value", value))


def _event(
    at: datetime, bundle: DirectoryBundle, result: OrganizationImported, command: ImportDirectory
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=command.actor,
        action="partner.directory-import",
        entity_type="Partner",
        entity_id=result.partner_id or "",
        outcome=result.outcome,
        request_id=command.request_id,
        detail={"directory": bundle.directory, **result.to_json()},
    )


def _summary(
    at: datetime,
    bundle: DirectoryBundle,
    results: list[OrganizationImported],
    again: list[OrganizationImported],
    command: ImportDirectory,
) -> AuditEvent:
    """One event per import, on the directory: how many organizations came to what
    (``changed`` when this import applied or proposed anything)."""
    counts: dict[str, int] = {}
    for result in [*results, *again]:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    counts["skipped"] = counts.get("skipped", 0) + len(bundle.skipped)
    changed = bool(results)
    return AuditEvent(
        at=at,
        actor=command.actor,
        action="partner.directory-import",
        entity_type="PartnerDirectory",
        entity_id=bundle.directory,
        outcome="changed" if changed else "unchanged",
        request_id=command.request_id,
        detail={"counts": counts, "not_ours": bundle.not_ours, "issues": len(bundle.issues)},
    )
