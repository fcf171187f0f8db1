"""An operator settles what a directory import held (ADR 0062): approving a proposal
registers the organization through ``enrol_partner`` (a new partner is read, a UDAP one
registered with, a re-pointed one must answer), rejecting it keeps the partner as it is
and the same entry is not proposed again. A proposal that is no longer pending, or whose
partner changed since it was made, is refused as stale: what the operator would approve
is not what the directory said against what was registered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from payerbridge.errors import Conflict, NotFound
from payerbridge.routing.directory_import import merged_partner, settle, standing
from payerbridge.routing.enrolment import Enrolled, EnrolPartner, enrol_partner
from payerbridge.routing.model import Partner, PartnerAuth
from payerbridge.routing.ports import PartnerProposal, ProposalDecision, ProposalStatus
from payerbridge.routing.unit import DirectoryUnit
from payerbridge.types import PartnerId

__all__ = ["SettleProposal", "approve_proposal", "pending_proposal", "reject_proposal"]


@dataclass(frozen=True)
class SettleProposal:
    """An operator's word on a proposal. ``client_id``: on approval, our client id at the
    partner's authorization server (SMART), which no directory says; ``note``: why."""

    proposal_id: str
    actor: str
    request_id: str | None = None
    client_id: str | None = None
    note: str | None = None


def pending_proposal(uow: DirectoryUnit, proposal_id: str) -> PartnerProposal:
    """The proposal if it is still pending and its partner stands as it was proposed
    against; NotFound, or Conflict saying why it is stale."""
    proposal = uow.proposals.get(proposal_id)
    if proposal is None:
        raise NotFound(f"no partner proposal has id '{proposal_id[:64]}'")
    if proposal.status is not ProposalStatus.PENDING:
        text = f"proposal {proposal.id} is {proposal.status.value}, no longer pending"
        if proposal.status is ProposalStatus.SUPERSEDED:
            text += ": a later import of the directory said something else; see its proposal"
        raise Conflict(text)
    if standing(uow.partners.get(PartnerId(proposal.partner_id))) != proposal.based_on:
        raise Conflict(
            f"proposal {proposal.id} is stale: partner '{proposal.partner_id}' changed since "
            "the directory was imported; import it again"
        )
    return proposal


def approve_proposal(command: SettleProposal, uow: DirectoryUnit) -> Enrolled:
    """Register what the proposal holds, as ``enrol_partner`` registers an operator's
    partner, then mark it approved (both audited in the caller's name)."""
    proposal = pending_proposal(uow, command.proposal_id)
    partner = _proposed_partner(proposal, uow, command.client_id)
    # Registered and approved in one transaction: never the one without the other.
    approved = partial(_decide, uow, proposal, ProposalStatus.APPROVED, command)
    asked = EnrolPartner(partner, command.actor, command.request_id, within=approved)
    return enrol_partner(asked, uow)


def reject_proposal(command: SettleProposal, uow: DirectoryUnit) -> PartnerProposal:
    """Mark the proposal rejected (audited); the partner stays as it is."""
    proposal = pending_proposal(uow, command.proposal_id)
    with uow:
        _decide(uow, proposal, ProposalStatus.REJECTED, command)
    settled = uow.proposals.get(proposal.id)
    assert settled is not None
    return settled


def _proposed_partner(
    proposal: PartnerProposal, uow: DirectoryUnit, client_id: str | None
) -> Partner:
    """The partner the proposal describes: new, or the registered one with the
    directory's NPI, trust framework and endpoints. A change of trust framework drops
    the client id we had there (a UDAP one is registered for again)."""
    organization = proposal.organization
    auth = PartnerAuth.UDAP if organization.udap else PartnerAuth.NONE
    before = uow.partners.get(PartnerId(proposal.partner_id))
    if before is None:
        return Partner(
            organization.partner_id,
            organization.name,
            organization.npi,
            "",
            client_id=client_id,
            auth=auth,
            endpoints=organization.endpoints,
        )
    merged = merged_partner(before, organization, f"directory {proposal.directory}")
    trust_changed = organization.udap != (before.auth is PartnerAuth.UDAP)
    if not trust_changed:
        return replace(merged, npi=organization.npi, client_id=client_id or merged.client_id)
    return replace(merged, npi=organization.npi, auth=auth, client_id=client_id, token_url=None)


def _decide(
    uow: DirectoryUnit, proposal: PartnerProposal, status: ProposalStatus, command: SettleProposal
) -> None:
    """Settle the proposal in ``uow``'s transaction; Conflict (the transaction rolled
    back) when it was settled meanwhile."""
    decision = ProposalDecision(status, command.actor, command.note)
    reasons = list(proposal.reasons)
    if not settle(uow, proposal, decision, command.request_id, reasons=reasons, note=command.note):
        raise Conflict(f"proposal {proposal.id} was settled meanwhile")
