"""The proposals directory imports hold, kept in the database (SQLite and PostgreSQL):
the newest per partner and directory, listed by status, settled once; one pending per
partner and directory even when two imports race."""

from __future__ import annotations

from dataclasses import replace

import pytest

from payerbridge.bootstrap import Platform
from payerbridge.errors import StoreConflict
from payerbridge.routing.directory_bundle import DirectoryOrganization
from payerbridge.routing.endpoints import PartnerEndpoint
from payerbridge.routing.ports import PartnerProposal, ProposalDecision, ProposalStatus
from payerbridge.types import PartnerId

ORGANIZATION = DirectoryOrganization(
    PartnerId("acme"),
    "Acme",
    "1234567893",
    (PartnerEndpoint("https://acme.example/fhir", 1, source="directory d"),),
    False,
    "Bundle.entry[0]",
)


def _proposal(platform: Platform, **change: object) -> PartnerProposal:
    with platform.transactions.begin() as unit:
        proposal = PartnerProposal(
            unit.new_id(), "d", ORGANIZATION, ("a new partner",), None, unit.now, "ops"
        )
        proposal = replace(proposal, **change)  # type: ignore[arg-type]
        platform.units.directory().proposals.add(unit, proposal)
    return proposal


def test_a_proposal_is_kept_read_back_and_settled_once(platform: Platform) -> None:
    proposals = platform.units.directory().proposals
    proposal = _proposal(platform)
    assert proposals.get(proposal.id) == proposal
    assert proposals.latest("acme", "d") == proposal
    assert proposals.latest("acme", "other") is None
    assert proposals.list(ProposalStatus.PENDING) == [proposal]
    with platform.transactions.begin() as unit:
        decision = ProposalDecision(ProposalStatus.APPROVED, "ops", "checked")
        assert proposals.decide(unit, proposal.id, decision)
        assert not proposals.decide(unit, proposal.id, decision)
    settled = proposals.get(proposal.id)
    assert settled is not None
    assert (settled.status, settled.decided_by, settled.note) == (
        ProposalStatus.APPROVED,
        "ops",
        "checked",
    )
    assert settled.decided_at is not None
    assert proposals.list(ProposalStatus.PENDING) == []
    assert proposals.list() == [settled]


def test_two_pending_proposals_for_one_partner_and_directory_are_refused(
    platform: Platform,
) -> None:
    _proposal(platform)
    with pytest.raises(StoreConflict):
        _proposal(platform)
    _proposal(platform, directory="another")  # another directory's is its own
