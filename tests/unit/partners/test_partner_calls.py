"""Every call to a partner is counted, whether an answer came or not: a partner that is
down is counted at the first call that finds it down (often our token request, or its
SMART configuration before it), unreachable or timed out, with no HTTP status; an
answer, by its status and class."""

from __future__ import annotations

import httpx
import pytest

from payerbridge.errors import PartnerUnavailable
from payerbridge.exchange.ports import RecordRead
from payerbridge.metrics.process import process_metrics
from payerbridge.net.transport import AddressRefused, AnswerTooLarge
from payerbridge.partners.answers import Outbound
from payerbridge.partners.calls import answer_outcome, failure_outcome
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId
from tests.servers import new_signing_key

KEY = new_signing_key()
BASE = "https://old.example/fhir"


def calls(partner: str, **labels: str) -> float:
    found = process_metrics().registry.get_sample_value(
        "payerbridge_partner_requests_total", {"partner": partner, **labels}
    )
    return found or 0.0


def client_with(handler: httpx.MockTransport) -> HttpxPartnerClient:
    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=handler), user_agent="test", key=KEY
    )


def test_a_partner_that_is_down_is_counted_at_the_call_that_finds_it_down() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    partner = Partner(PartnerId("down-1"), "Down", "1245319599", BASE, client_id="us")
    labels = {"method": "GET", "operation": "smart-configuration", "status": "none"}
    with pytest.raises(PartnerUnavailable):
        client_with(httpx.MockTransport(down)).everything(
            partner, RecordRead("Patient/1", idempotency_key="k")
        )
    assert calls("down-1", **labels, outcome="unreachable") == 1

    # Its token endpoint known: the token request is the call that finds it down.
    known = Partner(
        PartnerId("down-2"), "Down", "1245319599", BASE, client_id="us", token_url=f"{BASE}/token"
    )
    with pytest.raises(PartnerUnavailable):
        client_with(httpx.MockTransport(down)).everything(
            known, RecordRead("Patient/1", idempotency_key="k")
        )
    token = {"method": "POST", "operation": "token", "status": "none"}
    assert calls("down-2", **token, outcome="unreachable") == 1


def test_a_call_that_times_out_and_one_answered_are_counted_apart() -> None:
    def slow_everything(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        raise httpx.ReadTimeout("no answer in time", request=request)

    partner = Partner(
        PartnerId("slow"), "Slow", "1245319599", BASE, client_id="us", token_url=f"{BASE}/token"
    )
    with pytest.raises(PartnerUnavailable):
        client_with(httpx.MockTransport(slow_everything)).everything(
            partner, RecordRead("Patient/1", idempotency_key="k")
        )
    assert calls("slow", method="POST", operation="token", status="200", outcome="success") == 1
    everything = {"method": "GET", "operation": "$everything", "status": "none"}
    assert calls("slow", **everything, outcome="timeout") == 1


def test_outcomes_are_a_few_codes() -> None:
    request = httpx.Request("GET", BASE)
    assert failure_outcome(httpx.ConnectError("x", request=request)) == "unreachable"
    assert failure_outcome(httpx.ConnectTimeout("x", request=request)) == "unreachable"
    assert failure_outcome(httpx.ReadTimeout("x", request=request)) == "timeout"
    assert failure_outcome(httpx.RemoteProtocolError("x", request=request)) == "transport-error"
    assert failure_outcome(AnswerTooLarge(10)) == "too-large"
    wrapped = PartnerUnavailable("partner 'x' is unreachable")
    wrapped.__cause__ = httpx.ConnectError("x", request=request)
    assert failure_outcome(wrapped) == "unreachable"
    assert failure_outcome(AddressRefused("a private address", request=request)) == "refused"
    assert [answer_outcome(s) for s in (200, 404, 422, 429, 503)] == [
        "success",
        "rejected",
        "rejected",
        "throttled",
        "server-error",
    ]
