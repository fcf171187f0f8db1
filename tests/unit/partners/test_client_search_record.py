"""Reading a member's record by searches, for a partner without $everything: the Patient
by _id, each type by patient with its Provenance, every page followed, each resource once."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from payerbridge.errors import PartnerRejected
from payerbridge.exchange.ports import RecordRead
from payerbridge.partners.answers import Outbound
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId
from tests.servers import new_signing_key

BASE = "https://old.example/fhir"
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", BASE)
PROVENANCE = {"resourceType": "Provenance", "id": "prov-1"}


def entry(resource_type: str, resource_id: str, mode: str = "match") -> dict[str, Any]:
    return {
        "resource": {"resourceType": resource_type, "id": resource_id},
        "search": {"mode": mode},
    }


def client_of(answer: Any, seen: list[httpx.Request]) -> HttpxPartnerClient:
    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(respond)),
        user_agent="test",
        key=new_signing_key(),
    )


def test_each_type_is_searched_by_the_member_and_pages_and_provenance_are_kept_once() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if path == "/fhir/Patient":
            assert params["_id"] == "p7"
            entries = [entry("Patient", "p7"), entry("Provenance", "prov-1", "include")]
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})
        if path == "/fhir/Condition" and "page" not in params:
            assert params["patient"] == "p7" and params["_revinclude"] == "Provenance:target"
            page = {
                "resourceType": "Bundle",
                "total": 2,
                "entry": [entry("Condition", "c1"), entry("Provenance", "prov-1", "include")],
                "link": [{"relation": "next", "url": f"{BASE}/Condition?patient=p7&page=2"}],
            }
            return httpx.Response(200, json=page)
        if path == "/fhir/Condition":
            return httpx.Response(
                200, json={"resourceType": "Bundle", "entry": [entry("Condition", "c2")]}
            )
        raise AssertionError(f"unexpected {request.url}")

    seen: list[httpx.Request] = []
    retrieved = client_of(answer, seen).search_record(
        PARTNER, RecordRead("Patient/p7", idempotency_key="k"), ("Condition", "Patient")
    )
    bundle = orjson.loads(retrieved.content)
    found = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert found == [
        ("Patient", "p7"),
        ("Provenance", "prov-1"),
        ("Condition", "c1"),
        ("Condition", "c2"),
    ]
    assert retrieved.page_sizes == (2, 2, 1) and bundle["type"] == "searchset"
    assert [r.url.path for r in seen] == ["/fhir/Patient", "/fhir/Condition", "/fhir/Condition"]
    assert all(r.headers["idempotency-key"] == "k" for r in seen)


def test_a_refused_search_fails_the_whole_read() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fhir/Patient":
            return httpx.Response(
                200, json={"resourceType": "Bundle", "entry": [entry("Patient", "p7")]}
            )
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-supported", "details": {"text": "no"}}],
        }
        return httpx.Response(400, json=outcome)

    with pytest.raises(PartnerRejected, match="rejected Encounter search"):
        client_of(answer, []).search_record(
            PARTNER, RecordRead("Patient/p7", idempotency_key="k"), ("Encounter",)
        )


def test_a_member_off_the_partners_base_is_never_searched() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(PartnerRejected, match="not a Patient on its registered FHIR base"):
        client_of(lambda r: httpx.Response(500), seen).search_record(
            PARTNER,
            RecordRead("https://evil.example/fhir/Patient/p7", idempotency_key="k"),
            ("Condition",),
        )
    assert seen == []
