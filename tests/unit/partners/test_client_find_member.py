"""Finding the member a partner matched by its identifier (HRex 1.0.0 answers no
MemberId): exactly one Patient on the partner's base, or a clear refusal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from payerbridge.errors import AmbiguousMatch, NoMatch, PartnerRejected
from payerbridge.partners.answers import Outbound
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId
from tests.servers import new_signing_key

BASE = "https://old.example/fhir"
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", BASE)


def client_answering(status: int, body: Any, seen: list[httpx.Request]) -> HttpxPartnerClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(answer)),
        user_agent="test",
        key=new_signing_key(),
    )


def searchset(*ids: str, provenance: bool = True) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {"resource": {"resourceType": "Patient", "id": i}, "search": {"mode": "match"}} for i in ids
    ]
    if provenance:  # what a server adds beside the match (ours does): not a candidate
        entries.append(
            {"resource": {"resourceType": "Provenance", "id": "t"}, "search": {"mode": "include"}}
        )
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def test_the_one_patient_the_identifier_names_is_the_member() -> None:
    seen: list[httpx.Request] = []
    client = client_answering(200, searchset("p7"), seen)
    found = client.find_member(PARTNER, ("urn:umb", "U 1|x"), idempotency_key="k")
    assert found == "Patient/p7"
    (request,) = seen
    assert request.url.path == "/fhir/Patient"
    assert request.url.params["identifier"] == "urn:umb|U 1|x"
    assert request.headers["idempotency-key"] == "k"


def test_an_identifier_without_a_system_is_searched_by_its_value() -> None:
    seen: list[httpx.Request] = []
    client_answering(200, searchset("p7"), seen).find_member(
        PARTNER, (None, "U1"), idempotency_key="k"
    )
    assert seen[0].url.params["identifier"] == "U1"


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (200, searchset(), NoMatch, "finds no Patient"),
        (200, searchset("p7", "p8"), AmbiguousMatch, "finds 2 Patients"),
        (200, searchset("../p7"), PartnerRejected, "without a valid id"),
        (200, {"resourceType": "Parameters"}, PartnerRejected, "Patient search page 1 is not"),
        (400, {"resourceType": "OperationOutcome"}, PartnerRejected, "rejected the Patient search"),
    ],
)
def test_anything_but_one_patient_is_refused_with_the_reason(
    status: int, body: Any, error: type[Exception], says: str
) -> None:
    client = client_answering(status, body, [])
    with pytest.raises(error, match=says):
        client.find_member(PARTNER, ("urn:umb", "U1"), idempotency_key="k")
