"""Importing a directory bundle on fakes: endpoint-only changes apply at once (an
operator's endpoints kept); a new partner, another NPI or a change of UDAP is held for
an operator; importing twice changes nothing; approval registers through enrolment and
a stale proposal is refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.errors import Conflict
from payerbridge.routing.directory_import import (
    DirectoryImported,
    ImportDirectory,
    import_directory,
)
from payerbridge.routing.directory_proposals import (
    SettleProposal,
    approve_proposal,
    reject_proposal,
)
from payerbridge.routing.endpoints import EndpointStatus, PartnerEndpoint
from payerbridge.routing.model import Partner, PartnerAuth
from payerbridge.routing.ports import PartnerProposal, ProposalDecision, ProposalStatus
from payerbridge.routing.unit import DirectoryUnit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import PartnerId
from tests.directory_builders import one_payer
from tests.unit.routing.test_enrolment import NOW, Discovery, Registry

ACME = "1234567893"
A, B = "https://a.acme.example/fhir", "https://b.acme.example/fhir"


class Proposals:
    def __init__(self) -> None:
        self.kept: dict[str, PartnerProposal] = {}

    def add(self, unit: UnitOfWork, proposal: PartnerProposal) -> None:
        self.kept[proposal.id] = proposal

    def get(self, proposal_id: str) -> PartnerProposal | None:
        return self.kept.get(proposal_id)

    def list(self, status: ProposalStatus | None = None) -> list[PartnerProposal]:
        return [p for p in self.kept.values() if status is None or p.status is status]

    def latest(self, partner_id: str, directory: str) -> PartnerProposal | None:
        mine = [
            p for p in self.kept.values() if (p.partner_id, p.directory) == (partner_id, directory)
        ]
        return mine[-1] if mine else None

    def decide(self, unit: UnitOfWork, proposal_id: str, decision: ProposalDecision) -> bool:
        proposal = self.kept[proposal_id]
        if proposal.status is not ProposalStatus.PENDING:
            return False
        self.kept[proposal_id] = replace(
            proposal, status=decision.status, decided_by=decision.by, note=decision.note
        )
        return True


class RollingRegistry(Registry):
    """The directory whose transactions roll back: what a failed unit wrote is undone."""

    @contextmanager
    def begin(self) -> Iterator[Any]:
        partners, events = dict(self.partners), list(self.events)
        try:
            with super().begin() as unit:
                yield unit
        except BaseException:
            self.partners, self.events[:] = partners, events
            raise


class World:
    def __init__(self) -> None:
        self.registry, self.discovery = RollingRegistry(), Discovery()
        self.proposals = Proposals()

    def unit(self) -> DirectoryUnit:
        return DirectoryUnit(self.registry, self.registry, self.discovery, self.proposals)

    def run(self, document: Any) -> DirectoryImported:
        return import_directory(ImportDirectory(document, "file.json", NOW, "ops"), self.unit())

    def events(self, action: str) -> list[Any]:
        return [e for e in self.registry.events if e.action == action]

    def approve(self, proposal_id: str, client_id: str | None = None) -> Any:
        return approve_proposal(
            SettleProposal(proposal_id, "ops", client_id=client_id), self.unit()
        )


def registered(
    world: World, *endpoints: PartnerEndpoint, auth: PartnerAuth = PartnerAuth.NONE
) -> None:
    partner = Partner(PartnerId("acme"), "Acme", ACME, "", endpoints=endpoints, auth=auth)
    world.registry.partners["acme"] = partner


def outcome(done: DirectoryImported) -> list[tuple[str | None, str]]:
    return [(o.partner_id, o.outcome) for o in done.organizations]


def test_a_new_partner_is_held_and_approval_registers_it_through_enrolment() -> None:
    world = World()
    done = world.run(one_payer("Acme", ACME, A, B))
    assert outcome(done) == [("acme", "created-pending")]
    assert world.registry.partners == {}  # its NPI is only the directory's claim
    (proposal,) = world.proposals.list(ProposalStatus.PENDING)
    enrolled = world.approve(proposal.id, client_id="us-there")
    assert enrolled.created
    partner = world.registry.partners["acme"]
    assert (partner.npi, partner.base_url, partner.auth) == (ACME, A, PartnerAuth.SMART)
    assert [e.url for e in partner.endpoints] == [A, B]
    assert world.discovery.read_for == [A]  # read for the directory, as any new partner
    assert world.proposals.kept[proposal.id].status is ProposalStatus.APPROVED
    assert [e.outcome for e in world.events("partner.proposal")] == ["approved"]
    with pytest.raises(Conflict):  # settled: no second approval
        world.approve(proposal.id)


def test_an_approval_another_operator_settled_meanwhile_registers_nothing() -> None:
    world = World()
    world.run(one_payer("Acme", ACME, A, B))
    (proposal,) = world.proposals.list(ProposalStatus.PENDING)
    world.proposals.decide = lambda unit, proposal_id, decision: False  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="settled meanwhile"):
        world.approve(proposal.id)
    # Registered and approved in one transaction: neither, when the approval lost.
    assert world.registry.partners == {}
    assert not world.events("partner.register")


def test_an_endpoint_only_change_applies_at_once_keeping_the_operators_endpoints() -> None:
    world = World()
    operator = PartnerEndpoint("https://ops.acme.example/fhir", priority=0)
    old = PartnerEndpoint(A, 1, source="directory test-directory")
    registered(world, operator, old)
    done = world.run(one_payer("Acme", ACME, B))
    assert outcome(done) == [("acme", "updated")]
    (result,) = done.organizations
    assert f"added {B} (active, priority 1)" in result.changes
    assert f"removed {A}" in result.changes
    partner = world.registry.partners["acme"]
    assert [e.url for e in partner.endpoints] == [operator.url, B]
    assert partner.base_url == operator.url
    assert world.proposals.kept == {}
    (event,) = [e for e in world.events("partner.directory-import") if e.entity_type == "Partner"]
    assert event.outcome == "updated" and event.actor == "ops"


def test_importing_twice_changes_nothing_the_second_time() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    document = one_payer("Acme", ACME, A, B)
    assert outcome(world.run(document)) == [("acme", "updated")]
    events = len(world.registry.events)
    again = world.run(document)
    assert outcome(again) == [("acme", "unchanged")]
    new = world.registry.events[events:]
    assert [(e.action, e.entity_type, e.outcome) for e in new] == [
        ("partner.directory-import", "PartnerDirectory", "unchanged")
    ]


def test_a_held_entry_imported_again_is_not_proposed_again() -> None:
    world = World()
    document = one_payer("Acme", ACME, A)
    world.run(document)
    events = len(world.registry.events)
    again = world.run(document)
    assert outcome(again) == [("acme", "created-pending")]
    assert len(world.proposals.kept) == 1
    assert [e.outcome for e in world.registry.events[events:]] == ["unchanged"]


@pytest.mark.parametrize(
    ("npi", "udap", "auth", "reason"),
    [
        ("9876543213", False, PartnerAuth.NONE, "NPI changes"),
        (ACME, True, PartnerAuth.NONE, "names UDAP"),
        (ACME, False, PartnerAuth.UDAP, "no longer names UDAP"),
    ],
)
def test_an_npi_or_trust_change_pends_with_its_endpoints(
    npi: str, udap: bool, auth: PartnerAuth, reason: str
) -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"), auth=auth)
    before = world.registry.partners["acme"]
    done = world.run(one_payer("Acme", npi, B, udap=udap))
    assert outcome(done) == [("acme", "pending")]
    (result,) = done.organizations
    assert result.why is not None and reason in result.why
    assert world.registry.partners["acme"] == before  # nothing applied, endpoints neither


def test_a_proposal_superseded_by_a_later_import_is_refused_as_stale() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    world.run(one_payer("Acme", "9876543213", A))
    (first,) = world.proposals.list()
    world.run(one_payer("Acme", "1111111112", A))
    assert world.proposals.kept[first.id].status is ProposalStatus.SUPERSEDED
    with pytest.raises(Conflict, match="superseded"):
        world.approve(first.id)
    (second,) = world.proposals.list(ProposalStatus.PENDING)
    world.approve(second.id)
    assert world.registry.partners["acme"].npi == "1111111112"


def test_a_proposal_whose_partner_changed_since_is_refused_as_stale() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    world.run(one_payer("Acme", "9876543213", A))
    (proposal,) = world.proposals.list()
    registered(world, PartnerEndpoint(B))  # an operator re-registered it meanwhile
    with pytest.raises(Conflict, match="stale"):
        world.approve(proposal.id)


def test_a_rejected_entry_is_not_proposed_again() -> None:
    world = World()
    document = one_payer("Acme", ACME, A)
    world.run(document)
    (proposal,) = world.proposals.list()
    rejected = reject_proposal(SettleProposal(proposal.id, "ops", note="not ours"), world.unit())
    assert rejected.status is ProposalStatus.REJECTED
    again = world.run(document)
    assert outcome(again) == [("acme", "skipped")]
    assert len(world.proposals.kept) == 1 and world.registry.partners == {}


def test_an_off_endpoint_applies_as_off() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    document = one_payer("Acme", ACME, A, B)
    document["entry"][1]["resource"]["status"] = "suspended"
    world.run(document)
    partner = world.registry.partners["acme"]
    assert [(e.url, e.status) for e in partner.endpoints] == [
        (A, EndpointStatus.OFF),
        (B, EndpointStatus.ACTIVE),
    ]
    assert partner.base_url == B


def test_an_update_the_partner_does_not_answer_is_skipped_with_why() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    world.discovery.fails = True  # the moved endpoint must answer first
    done = world.run(one_payer("Acme", ACME, B))
    (result,) = done.organizations
    assert result.outcome == "skipped" and result.why and "unreachable" in result.why
    assert [e.url for e in world.registry.partners["acme"].endpoints] == [A]


def test_the_clock_is_the_commands() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    document = one_payer("Acme", ACME, A, B)
    document["entry"][2]["resource"]["period"] = {"end": "2026-01-01"}
    later = ImportDirectory(document, "f", datetime(2025, 6, 1, tzinfo=UTC), "ops")
    import_directory(later, world.unit())
    assert all(e.status is EndpointStatus.ACTIVE for e in world.registry.partners["acme"].endpoints)


def test_a_held_change_the_directory_takes_back_is_superseded() -> None:
    world = World()
    registered(world, PartnerEndpoint(A, 1, source="directory test-directory"))
    world.run(one_payer("Acme", "9876543213", A))
    (held,) = world.proposals.list()
    done = world.run(one_payer("Acme", ACME, A))  # as registered again
    assert outcome(done) == [("acme", "unchanged")]
    assert world.proposals.kept[held.id].status is ProposalStatus.SUPERSEDED
    assert [e.outcome for e in world.events("partner.proposal")] == ["superseded"]
