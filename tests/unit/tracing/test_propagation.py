"""W3C trace context without recording (the default): a caller's ``traceparent`` is
continued, sent on unchanged to a partner, carried into a workflow and written on log
lines; a malformed one is ignored; with propagation off nothing is taken or sent."""

from __future__ import annotations

import contextvars
import logging

import httpx
import orjson
import pytest

from payerbridge.errors import NoMatch
from payerbridge.logging import JsonFormatter, use_trace_ids
from payerbridge.partners.answers import Outbound
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Partner
from payerbridge.tracing import (
    begin_request,
    continued,
    current_ids,
    current_traceparent,
)
from payerbridge.tracing.context import configure
from payerbridge.types import PartnerId
from tests.servers import new_signing_key

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE}-00f067aa0ba902b7-01"
NOT_FOUND = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-found"}],
}
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", "https://old.example/fhir")


def partner_seeing(seen: list[httpx.Request]) -> HttpxPartnerClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(422, json=NOT_FOUND)

    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(answer)),
        user_agent="test",
        key=new_signing_key(),
    )


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"payer.example"), *((k.encode(), v.encode()) for k, v in values.items())]


def test_a_callers_trace_is_continued_and_sent_on_unchanged() -> None:
    seen: list[httpx.Request] = []
    traced = begin_request("POST", headers(traceparent=CALLER, tracestate="vendor=1"), "r-1")
    try:
        assert current_ids() == (TRACE, None)  # the caller's span is not ours to name
        with pytest.raises(NoMatch):
            partner_seeing(seen).member_match(PARTNER, {}, idempotency_key="k")
    finally:
        traced.end("/exchanges", 202)
    (request,) = seen
    assert request.headers["traceparent"] == CALLER  # not recording: forwarded as it came
    assert request.headers["tracestate"] == "vendor=1"
    assert current_ids() == (None, None)  # the request's context is gone with it


@pytest.mark.parametrize(
    "header",
    [
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # the version W3C forbids
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # an all-zero parent id
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",  # too short
        "not a traceparent",
    ],
)
def test_a_malformed_traceparent_is_ignored(header: str) -> None:
    seen: list[httpx.Request] = []
    traced = begin_request("GET", headers(traceparent=header), "r-2")
    try:
        assert current_ids() == (None, None)
        with pytest.raises(NoMatch):
            partner_seeing(seen).member_match(PARTNER, {}, idempotency_key="k")
    finally:
        traced.end(None, 200)
    assert "traceparent" not in seen[0].headers


def test_propagation_off_takes_and_sends_nothing() -> None:
    configure(None, propagate=False)
    seen: list[httpx.Request] = []
    traced = begin_request("POST", headers(traceparent=CALLER), "r-3")
    try:
        assert current_ids() == (None, None)
        assert current_traceparent() is None
        with pytest.raises(NoMatch):
            partner_seeing(seen).member_match(PARTNER, {}, idempotency_key="k")
    finally:
        traced.end("/exchanges", 202)
    assert "traceparent" not in seen[0].headers


def test_a_workflow_continues_the_trace_of_the_request_that_started_it() -> None:
    traced = begin_request("POST", headers(traceparent=CALLER), "r-4")
    try:
        carried = current_traceparent()  # what enqueue_exchange gives the workflow
    finally:
        traced.end("/exchanges", 202)
    assert carried == CALLER

    def later_elsewhere() -> tuple[str | None, str | None]:
        assert current_ids() == (None, None)
        with continued(carried):
            return current_ids()

    assert contextvars.Context().run(later_elsewhere) == (TRACE, None)
    with continued(None), continued("garbage"):
        assert current_ids() == (None, None)


def test_log_lines_carry_the_trace_id() -> None:
    use_trace_ids(current_ids)
    record = logging.makeLogRecord({"msg": "request", "levelno": 20, "levelname": "INFO"})
    assert "trace_id" not in orjson.loads(JsonFormatter().format(record))
    with continued(CALLER):
        line = orjson.loads(JsonFormatter().format(record))
    assert line["trace_id"] == TRACE
    assert "span_id" not in line  # the caller's span is not ours
