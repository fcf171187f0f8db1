"""Registering a partner on fakes: a re-pointed partner's discovery documents are read
first; a UDAP partner is read (signed metadata) and registered with, and keeps that
registration while its endpoint is unchanged; a token endpoint that contradicts the
signed metadata is refused; nothing is stored when discovery fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import InvalidInput, NotFound, UnprocessableRequest
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.enrolment import (
    EnrolPartner,
    RefreshPartner,
    enrol_partner,
    refresh_partner,
)
from payerbridge.routing.model import Partner, PartnerAuth
from payerbridge.routing.operations import Operations
from payerbridge.routing.ports import OperationsReplaced
from payerbridge.routing.unit import PartnersUnit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import PartnerId

BASE = "https://old.example/fhir"
TOKEN = "https://auth.old.example/token"
REGISTER = "https://auth.old.example/register"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Registry:
    """The partner directory and the transactions its writes commit in: each unit's
    audit events are kept in ``events``."""

    def __init__(self) -> None:
        self.partners: dict[str, Partner] = {}
        self.stored_readings: dict[str, Capabilities] = {}
        self.events: list[AuditEvent] = []

    @contextmanager
    def begin(self) -> Iterator[Unit]:
        yield Unit(self.events)

    def register(self, unit: UnitOfWork, partner: Partner) -> Partner | None:
        before = self.partners.get(partner.id)
        self.partners[partner.id] = partner
        return before

    def get(self, partner_id: PartnerId) -> Partner | None:
        return self.partners.get(partner_id)

    def list(self) -> list[Partner]:
        return list(self.partners.values())

    def capabilities(self, partner_id: PartnerId) -> Capabilities | None:
        return self.stored_readings.get(partner_id)

    def record_capabilities(
        self, unit: UnitOfWork, partner_id: PartnerId, capabilities: Capabilities
    ) -> None:
        self.stored_readings[partner_id] = capabilities

    def set_operations(
        self, unit: UnitOfWork, partner_id: PartnerId, operations: Operations
    ) -> OperationsReplaced | None:
        raise NotImplementedError

    @property
    def discovered(self) -> list[dict[str, Any] | None]:
        """What discovery said, as each registration's audit event tells it."""
        return [e.detail.get("discovered") for e in self.events if e.action == "partner.register"]

    @property
    def readings(self) -> dict[str, list[tuple[Capabilities, list[str]]]]:
        """Each partner's readings and what they changed, as their audit events tell."""
        found: dict[str, list[tuple[Capabilities, list[str]]]] = {}
        for event in self.events:
            if event.action == "partner.capabilities":
                reading = Capabilities.from_json(event.detail["capabilities"])
                found.setdefault(event.entity_id, []).append((reading, event.detail["changes"]))
        return found


class Unit:
    now = NOW

    def __init__(self, events: list[AuditEvent]) -> None:
        self._events = events

    def new_id(self) -> str:
        return f"id-{len(self._events)}"

    def record(self, *events: AuditEvent) -> None:
        self._events.extend(events)


class Discovery:
    def __init__(self, *, fails: bool = False) -> None:
        self.read_for: list[str] = []
        self.registered_at: list[str] = []
        self.fails = fails
        self.operations = ["member-match", "everything"]
        self.documents: dict[str, bytes] = {}  # davinci-configuration documents by location
        self.publisher: str | None = None

    def check_endpoints(self, partner: Partner) -> None:
        pass  # every address is callable here (the egress policy has its own tests)

    def wellknown(self, location: str) -> bytes:
        if location not in self.documents:
            raise UnprocessableRequest(f"the davinci-configuration at {location} answered 404")
        return self.documents[location]

    def read(self, partner: Partner) -> dict[str, Any]:
        self.read_for.append(partner.base_url)
        if self.fails:
            raise UnprocessableRequest("the partner's udap document is unreachable")
        found: dict[str, Any] = {"fhir_version": "4.0.1", "token_endpoint": TOKEN}
        if self.publisher:
            found["publisher"] = self.publisher
        if partner.auth is PartnerAuth.UDAP:
            found["registration_endpoint"] = REGISTER
        reading = Capabilities(NOW, "4.0.1", {"hrex": "1.1.0"}, frozenset(self.operations))
        return {**found, "capabilities": reading.to_json()}

    def register(self, partner: Partner, registration_endpoint: str) -> str:
        self.registered_at.append(registration_endpoint)
        return f"client-{len(self.registered_at)}"


def enrol(partner: Partner, registry: Registry, discovery: Discovery) -> Any:
    return enrol_partner(EnrolPartner(partner, "ops"), PartnersUnit(registry, registry, discovery))


def udap(**change: Any) -> Partner:
    partner = Partner(PartnerId("old"), "Old", "1245319599", BASE, auth=PartnerAuth.UDAP)
    return replace(partner, **change)


def test_a_udap_partner_is_registered_with_once_while_its_endpoint_stays() -> None:
    registry, discovery = Registry(), Discovery()
    first = enrol(udap(), registry, discovery)
    assert first.created
    assert (first.partner.client_id, first.partner.token_url) == ("client-1", TOKEN)
    discovered = dict(registry.discovered[-1] or {})
    assert discovered.pop("capabilities")["operations"] == ["everything", "member-match"]
    assert discovered == {
        "fhir_version": "4.0.1",
        "token_endpoint": TOKEN,
        "registration_endpoint": REGISTER,
        "registered": True,
    }
    renamed = enrol(udap(name="Old Health"), registry, discovery)
    assert not renamed.created and renamed.partner.client_id == "client-1"
    assert discovery.registered_at == [REGISTER] and len(discovery.read_for) == 1
    moved = enrol(udap(base_url="https://new-home.example/fhir"), registry, discovery)
    assert moved.partner.client_id == "client-2"
    assert discovery.read_for[-1] == "https://new-home.example/fhir"


def test_a_client_id_given_for_a_udap_partner_is_used_without_registering() -> None:
    registry, discovery = Registry(), Discovery()
    enrolled = enrol(udap(client_id="issued-out-of-band"), registry, discovery)
    assert enrolled.partner.client_id == "issued-out-of-band"
    assert enrolled.partner.auth is PartnerAuth.UDAP
    assert discovery.registered_at == [] and discovery.read_for == [BASE]


def test_a_token_endpoint_that_contradicts_the_signed_metadata_is_refused() -> None:
    registry, discovery = Registry(), Discovery()
    with pytest.raises(UnprocessableRequest, match="signed UDAP metadata") as refused:
        enrol(udap(token_url="https://attacker.example/token"), registry, discovery)
    assert refused.value.issues[0].expression == "token_url"
    assert registry.partners == {} and discovery.registered_at == []


def test_nothing_is_stored_when_the_partner_cannot_be_read() -> None:
    registry = Registry()
    with pytest.raises(UnprocessableRequest):
        enrol(udap(), registry, Discovery(fails=True))
    smart = Partner(PartnerId("old"), "Old", "1245319599", BASE, client_id="us")
    enrol(smart, registry, Discovery())
    with pytest.raises(UnprocessableRequest):
        enrol(replace(smart, base_url="https://elsewhere.example/fhir"), registry,
              Discovery(fails=True))  # fmt: skip
    assert registry.partners["old"].base_url == BASE


def test_a_smart_partner_is_read_when_added_and_re_pointed_not_when_renamed() -> None:
    registry, discovery = Registry(), Discovery()
    smart = Partner(PartnerId("old"), "Old", "1245319599", BASE, client_id="us")
    assert smart.auth is PartnerAuth.SMART  # a client id means we authenticate
    added = enrol(smart, registry, discovery)
    assert added.capabilities is not None and added.capabilities.offers("everything")
    assert registry.readings["old"][0][1] == ["first reading"]
    enrol(replace(smart, name="Old Health"), registry, discovery)
    assert discovery.read_for == [BASE]
    enrol(replace(smart, client_id="us-again"), registry, discovery)
    assert discovery.read_for == [BASE, BASE] and registry.discovered[-1] is not None


def test_a_new_partner_that_does_not_answer_yet_is_kept_unread() -> None:
    registry = Registry()
    smart = Partner(PartnerId("old"), "Old", "1245319599", BASE, client_id="us")
    enrolled = enrol(smart, registry, Discovery(fails=True))
    assert enrolled.created and enrolled.capabilities is None
    assert enrolled.unread is not None and "unreachable" in enrolled.unread
    assert registry.capabilities(PartnerId("old")) is None


def test_a_refresh_keeps_the_new_reading_and_says_what_changed() -> None:
    registry, discovery = Registry(), Discovery()
    enrol(Partner(PartnerId("old"), "Old", "1245319599", BASE), registry, discovery)
    discovery.operations = ["member-match"]
    uow = PartnersUnit(registry, registry, discovery)
    refreshed = refresh_partner(RefreshPartner(PartnerId("old"), "ops"), uow)
    assert refreshed.changes == ["dropped operation everything"]
    current = registry.capabilities(PartnerId("old"))
    assert current is not None and not current.offers("everything")
    with pytest.raises(NotFound):
        refresh_partner(RefreshPartner(PartnerId("nobody"), "ops"), uow)


def test_a_token_endpoint_without_a_way_to_authenticate_is_refused() -> None:
    lonely = Partner(PartnerId("old"), "Old", "1245319599", BASE, token_url=TOKEN)
    with pytest.raises(InvalidInput) as refused:
        enrol(lonely, Registry(), Discovery())
    assert refused.value.issues[0].expression == "token_url"
