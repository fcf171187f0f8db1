"""Recording: the request's server span continues the caller's trace and is named by its
route template; a partner call is a client span under it whose id the partner receives
as the parent; a unit of work is a span named after the use case that began it; errors
mark a span by their type alone; ``log`` writes spans as JSON lines (the trace id on
audit events: ``tests/integration/test_audit_trace_ids.py``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from payerbridge.errors import NoMatch, StoreConflict
from payerbridge.logging import JsonFormatter, use_trace_ids
from payerbridge.store.spans import summary_of, trace_statements
from payerbridge.store.unit_of_work import SqlTransactions
from payerbridge.tracing import (
    begin_request,
    current_ids,
    record_with,
    send_trace_context,
    span,
    start_tracing,
    stop_tracing,
)
from payerbridge.tracing.context import operation_of
from tests.unit.tracing.test_propagation import CALLER, PARTNER, TRACE, headers, partner_seeing

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False)
    return exporter


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (found,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return found


def test_a_request_and_its_partner_call_are_spans_of_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    seen: list[httpx.Request] = []
    traced = begin_request("POST", headers(traceparent=CALLER), "r-1")
    try:
        trace_id, span_id = current_ids()
        with pytest.raises(NoMatch):
            partner_seeing(seen).member_match(PARTNER, {}, idempotency_key="k")
    finally:
        traced.end("/exchanges", 202)
    server = named(spans, "POST /exchanges")
    client = named(spans, "POST $member-match")
    assert server.kind is SpanKind.SERVER and client.kind is SpanKind.CLIENT
    assert format_trace_id(server.context.trace_id) == trace_id == TRACE
    assert server.parent is not None and format_span_id(server.parent.span_id) == CALLER[36:52]
    assert format_span_id(server.context.span_id) == span_id  # ours, so on the log lines
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    # The partner continues our client span, not the caller's.
    sent = seen[0].headers["traceparent"]
    assert sent == f"00-{TRACE}-{format_span_id(client.context.span_id)}-01"
    assert server.attributes is not None and client.attributes is not None
    assert server.attributes["http.route"] == "/exchanges"
    assert server.attributes["http.response.status_code"] == 202
    assert server.attributes["payerbridge.request_id"] == "r-1"
    assert client.attributes["http.response.status_code"] == 422
    assert client.attributes["server.address"] == "old.example"
    assert client.status.status_code is StatusCode.ERROR
    # Nothing of the path or the body: only the template and the operation.
    assert "Patient/" not in str([dict(s.attributes or {}) for s in spans.get_finished_spans()])


def test_a_request_without_a_traceparent_starts_a_trace_and_a_500_fails_it(
    spans: InMemorySpanExporter,
) -> None:
    begin_request("GET", headers(), "r-2").end("/exchanges/{exchange_id}", None)
    server = named(spans, "GET /exchanges/{exchange_id}")
    assert server.parent is None
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 500
    assert server.status.status_code is StatusCode.ERROR


def test_a_caller_that_does_not_sample_is_followed() -> None:
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False)
    unsampled = CALLER[:-2] + "00"
    traced = begin_request("GET", headers(traceparent=unsampled), "r-3")
    assert current_ids()[0] == TRACE  # still propagated
    traced.end("/healthz", 200)
    assert exporter.get_finished_spans() == ()


def submit_something(transactions: SqlTransactions) -> None:
    """Stands for a use case: it begins a unit of work."""
    with transactions.begin():
        pass


def test_a_unit_of_work_is_a_span_named_after_its_use_case(
    spans: InMemorySpanExporter,
) -> None:
    transactions = SqlTransactions(create_engine("sqlite://"), clock=lambda: NOW)
    with span("request"):
        submit_something(transactions)
    unit = named(spans, "tests.unit.tracing.test_spans.submit_something")
    assert unit.attributes is not None and unit.attributes["db.system.name"] == "sqlite"
    assert unit.parent is not None
    assert unit.parent.span_id == named(spans, "request").context.span_id


def test_statements_in_a_trace_are_spans_named_by_their_summary(
    spans: InMemorySpanExporter,
) -> None:
    engine = create_engine("sqlite://")
    trace_statements(engine, engine)  # twice: listened to once
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE members (id TEXT)"))  # outside a trace: none
        with span("request"):
            connection.execute(text("SELECT id FROM members WHERE id = 'Smith'"))
            with pytest.raises(OperationalError):
                connection.execute(text("SELECT id FROM nowhere"))
    assert [s.name for s in spans.get_finished_spans()] == [
        "SELECT members",
        "SELECT nowhere",
        "request",
    ]
    found, failed = spans.get_finished_spans()[:2]
    assert found.parent is not None
    assert found.parent.span_id == named(spans, "request").context.span_id
    assert "Smith" not in str(dict(found.attributes or {}))
    assert failed.status.status_code is StatusCode.ERROR


def test_an_error_marks_the_span_by_its_type_alone(spans: InMemorySpanExporter) -> None:
    with pytest.raises(StoreConflict), span("write"):
        raise StoreConflict("duplicate key value (member 123-45-6789)")
    failed = named(spans, "write")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "StoreConflict"
    assert failed.events == ()  # no exception event: its message may quote a value
    assert "123-45" not in str(failed.status.description)


def test_spans_are_named_by_operation_and_summary_never_by_values() -> None:
    assert operation_of("/fhir/Patient/$member-match") == "$member-match"
    assert operation_of("/fhir/Patient/p-123/$everything") == "$everything"
    assert operation_of("/fhir/Coverage") == "Coverage"
    assert operation_of("/auth/token") == ""
    assert summary_of("SELECT id FROM exchanges WHERE member = :m") == "SELECT exchanges"
    assert summary_of("insert into audit_events (a) values (?)") == "INSERT audit_events"
    assert summary_of("UPDATE breakers SET x = 1") == "UPDATE breakers"
    assert summary_of("  ") == "SQL"


def test_off_records_nothing_and_log_writes_spans_as_json_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = SimpleNamespace(
        tracing="off",
        trace_propagation=True,
        otlp_endpoint=None,
        trace_sample_ratio=1.0,
        worker_id="w1",
    )
    start_tracing(settings, version="1")
    with span("nothing") as nothing:
        assert not nothing.is_recording()
    settings.tracing = "log"
    start_tracing(settings, version="1")
    use_trace_ids(current_ids)
    caplog.set_level(logging.INFO, logger="payerbridge.trace")
    with span("work", {"payerbridge.exchange_id": "e1"}):
        trace_id = current_ids()[0]
    stop_tracing()  # sends what the batch holds
    (record,) = [r for r in caplog.records if r.name == "payerbridge.trace"]
    line = orjson.loads(JsonFormatter().format(record))
    assert line["span_name"] == "work" and line["trace_id"] == trace_id
    assert line["attributes"] == {"payerbridge.exchange_id": "e1"}
    assert line["kind"] == "internal" and line["parent_span_id"] is None


def test_a_trace_the_sampler_dropped_makes_no_spans_below_it_but_keeps_its_id() -> None:
    """A caller that sampled its trace out (flags 00): the request's span is not recorded,
    and neither a unit's nor a partner call's span is made under it; the trace id still
    goes on (logs, audit events, the partner)."""
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False)
    unsampled = f"00-{TRACE}-00f067aa0ba902b7-00"
    traced = begin_request("POST", headers(traceparent=unsampled), "r-1")
    try:
        outside: dict[str, str] = {}
        send_trace_context(outside)
        with span("a use case") as current:
            assert not current.is_recording()
            assert current_ids()[0] == TRACE
            sent: dict[str, str] = {}
            send_trace_context(sent)
            # No span of its own: the context sent on is the request's, as it was.
            assert sent["traceparent"] == outside["traceparent"]
            assert sent["traceparent"].startswith(f"00-{TRACE}-")
            assert sent["traceparent"].endswith("-00")
    finally:
        traced.end("/exchanges", 202)
        stop_tracing()
    assert exporter.get_finished_spans() == ()
