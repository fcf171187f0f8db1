"""An organization (NPI) is bound to a UDAP client by its certificate or by an operator,
never by a software statement's word alone (ADR 0026), with real certificates."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from payerbridge.npi import npi_check_digit
from payerbridge.security.limits import InMemoryAllowances, RateLimiter, RatePolicy
from payerbridge.security.model import (
    ApproveOrganization,
    ClientKind,
    OAuthError,
    OrganizationEvidence,
    RegisteredClient,
)
from payerbridge.security.organization import (
    bind_registration,
    certificate_npis,
    npi_of_identifier,
)
from payerbridge.security.registry import approve_organization
from payerbridge.security.service import authenticate
from payerbridge.security.unit import SecurityUnit
from payerbridge.types import ClientId
from tests.pki import NPI_SYSTEM, CertificateAuthority
from tests.unit.security.test_udap import ANCHOR, B2B, NOW, NPI, URI, World, assertion, statement

OTHER_NPI = "1245319599"


def udap_client_for(npi: str) -> RegisteredClient:
    return RegisteredClient(
        ClientId("udap-1"),
        "Plan",
        npi,
        frozenset({"system/*.rs"}),
        kind=ClientKind.UDAP,
        certificate_uri=URI,
    )


def test_the_npi_a_certificate_carries_by_the_community_profile() -> None:
    def carried(**kwargs: Any) -> frozenset[str]:
        return certificate_npis(ANCHOR.issue(URI, **kwargs).certificate)

    assert carried() == frozenset()
    assert carried(npi=NPI) == {NPI}
    assert carried(more_uris=[f"urn:oid:2.16.840.1.113883.4.6%7C{NPI}"]) == {NPI}
    assert carried(organization_identifier=f"NPIUS-{NPI}") == {NPI}
    # Look-alikes carry nothing: another system, a bad check digit, another scheme.
    assert carried(more_uris=[f"http://example.org/npi|{NPI}", f"{NPI_SYSTEM}|1234567890"]) == (
        frozenset()
    )
    assert carried(organization_identifier=f"NTRUS-{NPI}") == frozenset()
    assert npi_of_identifier(f"{NPI_SYSTEM}|{NPI}") == NPI
    assert npi_of_identifier(NPI) is None


def _approve(world: World, client_id: str, npi: str = NPI) -> Any:
    uow = SecurityUnit(
        world.service.transactions,
        world.clients,
        world.service,
        world.verifier,
        RateLimiter(RatePolicy(None), InMemoryAllowances()),
        None,
        {},
    )
    return approve_organization(ApproveOrganization(ClientId(client_id), npi, "operator-1"), uow)


def test_a_certificate_without_the_npi_waits_for_an_operator_and_gets_no_token() -> None:
    world = World()
    bare = ANCHOR.issue(URI)
    client = world.register(statement(bare))
    assert client.npi_evidence is OrganizationEvidence.PENDING and client.is_awaiting_approval
    with pytest.raises(OAuthError) as refused:
        world.token(assertion(client.client_id, bare))
    assert refused.value.error == "unauthorized_client"
    assert "awaits an operator's approval" in refused.value.description
    assert world.audit.events[-1].detail["reason"] == "unauthorized_client"
    # Registering again with the same bare certificate changes nothing.
    assert world.register(statement(bare)).is_awaiting_approval
    # The operator must name the NPI claimed: approving another is refused.
    with pytest.raises(InvalidInput):
        _approve(world, client.client_id, OTHER_NPI)
    approved = _approve(world, client.client_id)
    assert approved.npi_evidence is OrganizationEvidence.OPERATOR
    assert approved.npi_vouched_by == "operator-1"
    event = world.audit.events[-1]
    assert (event.action, event.actor, event.detail["npi"]) == (
        "client.approve",
        "operator-1",
        NPI,
    )
    grant = world.token(assertion(client.client_id, bare))
    principal = authenticate(
        grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW
    )
    assert principal.npi == NPI
    # Approved once; a bare re-registration keeps the operator's approval.
    assert not world.register(statement(bare)).is_awaiting_approval
    with pytest.raises(Conflict, match="bound already"):
        _approve(world, client.client_id)
    with pytest.raises(NotFound):
        _approve(world, "udap-nobody")


def test_a_certificate_of_another_organization_is_refused_at_registration_and_token() -> None:
    world = World()
    theirs = ANCHOR.issue(URI, npi=OTHER_NPI)
    with pytest.raises(OAuthError) as refused:
        world.register(statement(theirs))
    assert refused.value.error == "invalid_software_statement"
    assert "does not carry" in refused.value.description
    assert world.clients.list() == []
    # Bound by the right certificate, a token asked with another organization's is refused.
    ours = ANCHOR.issue(URI, npi=NPI)
    client = world.register(statement(ours))
    assert client.npi_evidence is OrganizationEvidence.CERTIFICATE
    with pytest.raises(OAuthError, match="another organization's NPI"):
        world.token(assertion(client.client_id, theirs))


def test_registering_again_never_changes_the_npi() -> None:
    world = World()
    client = world.register(statement(ANCHOR.issue(URI, npi=NPI)))
    other_org = {"hl7-b2b": {**B2B["hl7-b2b"], "organization_id": f"{NPI_SYSTEM}|{OTHER_NPI}"}}
    for certificate in (ANCHOR.issue(URI), ANCHOR.issue(URI, npi=OTHER_NPI, more_uris=())):
        with pytest.raises(OAuthError) as refused:
            world.register(statement(certificate, extensions=other_org))
        assert "does not carry" in refused.value.description or (
            "cannot change the organization" in refused.value.description
        )
    # Even a certificate carrying both NPIs cannot move the client to the other one.
    both = ANCHOR.issue(URI, npi=NPI, more_uris=[f"{NPI_SYSTEM}|{OTHER_NPI}"])
    with pytest.raises(OAuthError, match="cannot change the organization"):
        world.register(statement(both, extensions=other_org))
    stored = world.clients.get(client.client_id)
    assert stored is not None and stored.npi == NPI
    assert stored.npi_evidence is OrganizationEvidence.CERTIFICATE


def test_a_waiting_client_is_upgraded_by_a_certificate_that_carries_its_npi() -> None:
    world = World()
    client = world.register(statement(ANCHOR.issue(URI)))
    assert client.is_awaiting_approval
    proven = world.register(statement(ANCHOR.issue(URI, organization_identifier=f"NPIUS-{NPI}")))
    assert proven.npi_evidence is OrganizationEvidence.CERTIFICATE
    assert world.token(assertion(client.client_id)).access_token


def test_a_token_of_a_client_put_back_to_waiting_stops_working() -> None:
    """Defence in depth: authentication refuses a waiting client's token too."""
    world = World()
    client = world.register(statement())
    grant = world.token(assertion(client.client_id))
    stored = world.clients.clients[client.client_id]
    world.clients.clients[client.client_id] = dataclasses.replace(
        stored, npi_evidence=OrganizationEvidence.PENDING
    )
    with pytest.raises(Unauthenticated):
        authenticate(grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW)


def test_another_community_cannot_vouch_for_an_npi() -> None:
    world = World()
    with pytest.raises(OAuthError, match="trust anchor"):
        world.register(statement(CertificateAuthority("Other").issue(URI, npi=NPI)))


# Generated cases: any claimed NPI against any NPIs a certificate carries, with or without
# a client already registered; PAYERBRIDGE_HYPOTHESIS_EXAMPLES for a longer run by hand.
EXAMPLES = int(os.environ.get("PAYERBRIDGE_HYPOTHESIS_EXAMPLES", "200"))
_NPIS = st.from_regex(r"\A[0-9]{9}\Z").map(lambda base: base + str(npi_check_digit(base)))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    claimed=_NPIS,
    carried=st.frozensets(_NPIS, max_size=3),
    known=st.one_of(st.none(), st.tuples(_NPIS, st.sampled_from(list(OrganizationEvidence)))),
)
def test_an_npi_is_bound_only_by_the_certificate_or_what_bound_it_before(
    claimed: str,
    carried: frozenset[str],
    known: tuple[str, OrganizationEvidence] | None,
) -> None:
    client = udap_client_for(claimed)
    before = None
    if known is not None:
        before = dataclasses.replace(udap_client_for(known[0]), npi_evidence=known[1])
    try:
        bound = bind_registration(client, before, carried, now=NOW)
    except OAuthError:
        assert (carried and claimed not in carried) or (before and before.npi != claimed)
        return
    assert bound.npi == claimed and (before is None or before.npi == claimed)
    if claimed in carried:
        assert bound.npi_evidence is OrganizationEvidence.CERTIFICATE
    else:
        assert not carried
        expected = OrganizationEvidence.PENDING if before is None else before.npi_evidence
        assert bound.npi_evidence is expected


@settings(max_examples=max(EXAMPLES // 10, 10), deadline=None)
@given(npi=_NPIS, other=_NPIS, form=st.sampled_from(["|", "%7C", "%7c"]))
def test_a_certificate_carries_exactly_the_npis_written_in_the_profiles_forms(
    npi: str, other: str, form: str
) -> None:
    issued = ANCHOR.issue(
        URI,
        more_uris=[f"urn:oid:2.16.840.1.113883.4.6{form}{npi}", f"https://x.example/{other}"],
        organization_identifier=f"NPIUS-{other}" if other != npi else None,
    )
    assert certificate_npis(issued.certificate) == {npi, other}
