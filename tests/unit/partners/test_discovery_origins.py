"""A partner's discovery documents name its endpoints; those on another origin than its
FHIR base are not called unless an operator named them: the SMART reading records the
refusal and the route says why; a UDAP registration endpoint elsewhere gets nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from payerbridge.errors import UnprocessableRequest
from payerbridge.partners.answers import Outbound
from payerbridge.partners.discovery import HttpxPartnerDiscovery
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import Partner, PartnerAuth
from payerbridge.routing.route import decide_route
from payerbridge.types import PartnerId

BASE = "https://fhir.old.example/r4"
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", BASE, client_id="us")
METADATA = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}


def discovery(token_endpoint: str, seen: list[str]) -> HttpxPartnerDiscovery:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=METADATA)
        return httpx.Response(200, json={"token_endpoint": token_endpoint})

    return HttpxPartnerDiscovery(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(answer))
    )


def test_a_token_endpoint_on_the_base_origin_is_kept() -> None:
    found = discovery(f"{BASE.rsplit('/', 1)[0]}/auth/token", []).read(PARTNER)
    assert "refused_endpoints" not in found
    assert Capabilities.from_json(found["capabilities"]).refused == {}


def test_a_token_endpoint_elsewhere_is_recorded_as_refused_and_the_route_says_why() -> None:
    found = discovery("https://login.attacker.example/token", []).read(PARTNER)
    reading = Capabilities.from_json(found["capabilities"])
    assert "another origin" in reading.refused["token"]
    route = decide_route(BASE, reading, now=datetime.now(UTC))
    assert not route.routable
    assert "token endpoint is refused" in route.why_not()


def test_an_operator_token_url_elsewhere_is_approved() -> None:
    approved = replace(PARTNER, token_url="https://login.old-idp.example/token")
    found = discovery("https://login.attacker.example/token", []).read(approved)
    assert found["token_endpoint"] == approved.token_url
    assert Capabilities.from_json(found["capabilities"]).refused == {}


def test_a_udap_registration_endpoint_elsewhere_gets_no_statement() -> None:
    seen: list[str] = []
    udap = replace(PARTNER, auth=PartnerAuth.UDAP, client_id=None)
    with pytest.raises(UnprocessableRequest, match="another origin"):
        discovery("", seen).register(udap, "https://register.attacker.example/register")
    assert seen == []
