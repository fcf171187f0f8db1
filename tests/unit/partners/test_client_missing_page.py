"""A later page of a member's record that the partner cannot give now fails the call, to
be retried; on the last attempt it ends the record there, with a completeness outcome
naming the page. The first page, or a page the partner refuses outright, fails it
always."""

from __future__ import annotations

import httpx
import orjson
import pytest

from payerbridge.errors import PartnerRejected, PartnerUnavailable
from payerbridge.exchange.ports import RecordRead
from payerbridge.fhir.completeness import gaps_of
from payerbridge.partners.answers import Outbound
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId
from tests.servers import new_signing_key

BASE = "https://old.example/fhir"
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", BASE)


def page(number: int, more: bool) -> dict:  # type: ignore[type-arg]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 3,
        "entry": [{"resource": {"resourceType": "Condition", "id": f"c{number}"}}],
    }
    if more:
        bundle["link"] = [{"relation": "next", "url": f"{BASE}/page?n={number + 1}"}]
    return bundle


def partner_failing(at: int, status: int | None) -> HttpxPartnerClient:
    def handle(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("n", "1"))
        if number == at:
            if status is None:
                raise httpx.ConnectError("down", request=request)
            return httpx.Response(status, json={"resourceType": "OperationOutcome", "issue": []})
        return httpx.Response(200, json=page(number, more=number < 3))

    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(handle)),
        user_agent="test",
        key=new_signing_key(),
    )


@pytest.mark.parametrize("status", [None, 500, 503, 429])
def test_a_later_page_not_given_now_is_named_and_the_pages_before_it_kept(
    status: int | None,
) -> None:
    client = partner_failing(at=3, status=status)
    with pytest.raises((PartnerUnavailable, PartnerRejected)):  # before the last attempt
        client.everything(PARTNER, RecordRead("Patient/1", idempotency_key="k"))
    retrieved = client.everything(
        PARTNER, RecordRead("Patient/1", idempotency_key="k", keep_partial=True)
    )
    bundle = orjson.loads(retrieved.content)
    kept = [
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition"
    ]
    assert kept == ["c1", "c2"]
    (gap,) = gaps_of(bundle)
    assert "page 3" in gap.text and gap.retry_may_help


def test_the_first_page_not_given_fails_the_call() -> None:
    with pytest.raises(PartnerUnavailable):
        partner_failing(at=1, status=None).everything(
            PARTNER, RecordRead("Patient/1", idempotency_key="k", keep_partial=True)
        )


def test_a_later_page_refused_outright_still_fails_the_call() -> None:
    with pytest.raises(PartnerRejected):
        partner_failing(at=2, status=404).everything(
            PARTNER, RecordRead("Patient/1", idempotency_key="k", keep_partial=True)
        )
