"""Registering a partner from its davinci-configuration alone, and reading it again on
refresh, on fakes: the NPI from the document (or the operator's where it names none),
the id from the host, the name from the CapabilityStatement; a refresh replaces only the
endpoints the document gave and audits what changed; a bad document stores nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from payerbridge.errors import InvalidInput, UnprocessableRequest
from payerbridge.routing.discovered import (
    DiscoverPartner,
    RefreshDiscovered,
    RefreshRun,
    discover_partner,
    refresh_discovered,
)
from payerbridge.routing.endpoints import PartnerEndpoint
from payerbridge.routing.enrolment import RefreshPartner, refresh_partner
from payerbridge.routing.unit import PartnersUnit
from payerbridge.routing.wellknown import WELLKNOWN_EXTENSION
from payerbridge.types import PartnerId
from tests.unit.routing.test_enrolment import NOW, Discovery, Registry

AT = "https://fhir.old-plan.example/.well-known/davinci-configuration"
NPI = "1245319599"
PAYER = "davinci_pdex_payer_endpoint"


def document(npi: str | None = NPI, **endpoints: str) -> bytes:
    identifier = (
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}
        if npi
        else {"system": "http://example.org/payer-ids", "value": "OLD-1"}
    )
    found = endpoints or {
        f"{PAYER}#2.2": "https://fhir.old-plan.example/r4",
        f"{PAYER}#2.1": "https://fhir.old-plan.example/legacy",
    }
    return json.dumps({"identifier": identifier, "endpoints": found}).encode()


def discover(registry: Registry, discovery: Discovery, **asked: Any) -> Any:
    command = DiscoverPartner("ops", **{"wellknown_url": AT, **asked})
    return discover_partner(command, PartnersUnit(registry, registry, discovery))


def test_a_partner_is_registered_from_its_document_alone() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    discovery.publisher = "Old Plan Inc."
    found = discover(registry, discovery)
    partner = registry.partners["fhir-old-plan-example"]
    assert found.enrolled.created
    assert (partner.name, partner.npi) == ("Old Plan Inc.", NPI)
    assert partner.base_url == "https://fhir.old-plan.example/r4"  # the newest version first
    assert [(e.url, e.versions) for e in partner.endpoints] == [
        ("https://fhir.old-plan.example/r4", ("2.2",)),
        ("https://fhir.old-plan.example/legacy", ("2.1",)),
    ]
    [event] = [e for e in registry.events if e.action == "partner.register"]
    assert event.detail["discovered"]["endpoints_from"] == AT
    assert {e["source"] for e in event.detail["endpoints"]} == {f"well-known {AT}"}


def test_the_operators_id_name_and_npi_are_used_and_the_host_names_what_is_missing() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document(npi=None)
    discover(registry, discovery, id="old", name="Old", npi=NPI)
    assert (registry.partners["old"].name, registry.partners["old"].npi) == ("Old", NPI)
    discover(registry, discovery, id="old2", npi=NPI)  # its CapabilityStatement names none
    assert registry.partners["old2"].name == "fhir.old-plan.example"


@pytest.mark.parametrize(
    ("asked", "said"),
    [
        ({}, "names no valid NPI"),  # the identifier is not an NPI and none was given
        ({"npi": "1234567893"}, None),
    ],
)
def test_an_npi_the_document_does_not_give_must_be_given(
    asked: dict[str, Any], said: str | None
) -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document(npi=None)
    if said is None:
        discover(registry, discovery, **asked)
        assert registry.partners["fhir-old-plan-example"].npi == "1234567893"
        return
    with pytest.raises(UnprocessableRequest, match=said):
        discover(registry, discovery, **asked)
    assert registry.partners == {} and registry.events == []


def test_an_npi_that_contradicts_the_document_is_refused() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    with pytest.raises(UnprocessableRequest) as caught:
        discover(registry, discovery, npi="1234567893")
    assert caught.value.issues[0].code == "conflict"
    assert registry.partners == {}


def test_discovering_a_registered_partner_again_keeps_what_is_not_given() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    discover(registry, discovery, id="old", name="Old")
    stored = registry.partners[PartnerId("old")]
    operator = PartnerEndpoint("https://dr.old-plan.example/fhir", 50)
    registry.partners[stored.id] = replace(
        stored, client_id="us", endpoints=(*stored.endpoints, operator)
    )
    discover(registry, discovery, id="old")
    again = registry.partners[PartnerId("old")]
    assert (again.name, again.client_id, again.npi) == ("Old", "us", NPI)
    assert operator in again.endpoints
    discovery.documents[AT] = document(npi="1234567893")  # another organization's NPI
    with pytest.raises(UnprocessableRequest, match="another NPI"):
        discover(registry, discovery, id="old")
    assert registry.partners[PartnerId("old")].npi == NPI
    discover(registry, discovery, id="old", npi="1234567893")  # the operator confirms it
    assert registry.partners[PartnerId("old")].npi == "1234567893"


def test_a_hostile_document_stores_nothing_and_reads_nothing_else() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document(**{PAYER: "https://collector.evil.example/fhir"})
    with pytest.raises(UnprocessableRequest, match="cannot be used"):
        discover(registry, discovery)
    assert registry.partners == {} and registry.events == [] and discovery.read_for == []


def test_the_location_may_come_from_a_members_old_coverage() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    coverage = {
        "resourceType": "Coverage",
        "extension": [{"url": WELLKNOWN_EXTENSION, "valueUri": AT}],
    }
    discover(registry, discovery, wellknown_url=None, coverage=coverage, id="old")
    assert registry.partners["old"].npi == NPI
    with pytest.raises(InvalidInput, match="not both"):
        discover(registry, discovery, coverage=coverage)
    with pytest.raises(InvalidInput, match="cannot be read"):
        discover(registry, discovery, wellknown_url="file:///etc/passwd")


def test_a_refresh_replaces_the_documents_endpoints_and_audits_the_change() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    discover(registry, discovery, id="old")
    partner = registry.partners[PartnerId("old")]
    operator = PartnerEndpoint("https://dr.old-plan.example/fhir", 50)
    registry.partners[partner.id] = replace(partner, endpoints=(*partner.endpoints, operator))
    discovery.documents[AT] = document(
        **{
            f"{PAYER}#2.2": "https://fhir.old-plan.example/r4",
            f"{PAYER}#3.0": "https://fhir.old-plan.example/r5",
        }
    )
    uow = PartnersUnit(registry, registry, discovery)
    refreshed = refresh_partner(RefreshPartner(PartnerId("old"), "ops"), uow)
    assert refreshed.endpoint_changes == (
        "added https://fhir.old-plan.example/r5",
        "removed https://fhir.old-plan.example/legacy",
    )
    after = registry.partners[PartnerId("old")]
    assert [e.url for e in after.endpoints] == [
        "https://dr.old-plan.example/fhir",
        "https://fhir.old-plan.example/r5",
        "https://fhir.old-plan.example/r4",
    ]
    assert after.base_url == "https://fhir.old-plan.example/r5"
    [event] = [e for e in registry.events if e.action == "partner.endpoints"]
    assert event.detail["wellknown"] == AT and event.outcome == "changed"
    assert discovery.read_for[-1] == "https://fhir.old-plan.example/r5"


def test_a_refresh_whose_document_fails_changes_nothing() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    discover(registry, discovery, id="old")
    before, events = registry.partners[PartnerId("old")], len(registry.events)
    discovery.documents[AT] = b"{"
    uow = PartnersUnit(registry, registry, discovery)
    with pytest.raises(UnprocessableRequest, match="cannot be used") as caught:
        refresh_partner(RefreshPartner(PartnerId("old"), "ops"), uow)
    assert "not JSON" in caught.value.issues[0].text
    assert registry.partners[PartnerId("old")] == before and len(registry.events) == events


def test_a_refresh_of_a_partner_no_document_named_reads_none() -> None:
    registry, discovery = Registry(), Discovery()
    discovery.documents[AT] = document()
    discover(registry, discovery, id="old")
    registry.partners[PartnerId("old")] = replace(
        registry.partners[PartnerId("old")],
        base_url="",
        endpoints=(PartnerEndpoint("https://fhir.old-plan.example/r4"),),
    )
    del discovery.documents[AT]
    uow = PartnersUnit(registry, registry, discovery)
    refreshed = refresh_partner(RefreshPartner(PartnerId("old"), "ops"), uow)
    assert refreshed.endpoint_changes == ()


def test_the_scheduled_refresh_reads_again_the_due_documents_only() -> None:
    registry, discovery = Registry(), Discovery()
    other = "https://fhir.other-plan.example/.well-known/davinci-configuration"
    discovery.documents[AT] = document()
    discovery.documents[other] = document(
        npi="1234567893", **{PAYER: "https://fhir.other-plan.example/r4"}
    )
    discover(registry, discovery, id="old")
    discover(registry, discovery, id="other", wellknown_url=other)
    registry.partners[PartnerId("by-hand")] = replace(
        registry.partners[PartnerId("old")],
        id=PartnerId("by-hand"),
        base_url="",
        endpoints=(PartnerEndpoint("https://by-hand.example/fhir"),),
    )
    discovery.documents[AT] = document(**{f"{PAYER}#2.2": "https://fhir.old-plan.example/r4"})
    discovery.documents[other] = b"[]"
    uow = PartnersUnit(registry, registry, discovery)
    run = refresh_discovered(RefreshDiscovered(NOW + timedelta(hours=23), timedelta(hours=24)), uow)
    assert run == RefreshRun({}, {})  # read an hour ago: not due
    run = refresh_discovered(RefreshDiscovered(NOW + timedelta(hours=24), timedelta(hours=24)), uow)
    assert run.changed == {"old": ("removed https://fhir.old-plan.example/legacy",)}
    assert list(run.failed) == ["other"] and "cannot be used" in run.failed[PartnerId("other")]
    assert "by-hand" not in run.changed  # no document named its endpoints
    limited = RefreshDiscovered(NOW + timedelta(days=9), timedelta(hours=24), limit=1)
    assert len(refresh_discovered(limited, uow).changed) == 1
