"""Sampling the traces we start: kept with the configured ratio, decided once at the
trace's first span, so that a kept trace is whole and a dropped one makes no span at all
(and still has a trace id for the logs, the audit trail and the partner)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payerbridge.tracing import (
    begin_request,
    current_ids,
    record_with,
    send_trace_context,
    span,
    stop_tracing,
)
from tests.unit.tracing.test_propagation import CALLER, headers


def _one_request(n: int) -> str | None:
    """A request with no traceparent, a use case and a nested step in it; its trace id."""
    traced = begin_request("POST", headers(), f"r-{n}")
    try:
        trace_id = current_ids()[0]
        with span("use case"), span("step"):
            sent: dict[str, str] = {}
            send_trace_context(sent)
            assert sent["traceparent"].split("-")[1] == trace_id
    finally:
        traced.end("/exchanges", 202)
    return trace_id


@settings(max_examples=20, deadline=None)
@given(ratio=st.sampled_from([0.0, 0.1, 0.5, 1.0]), requests=st.integers(1, 40))
def test_a_kept_trace_is_whole_and_a_dropped_one_makes_no_span(ratio: float, requests: int) -> None:
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False, sample_ratio=ratio)
    try:
        ids = [_one_request(n) for n in range(requests)]
    finally:
        stop_tracing()
    assert all(ids) and len(set(ids)) == requests  # every request has a trace of its own
    by_trace = Counter(s.context.trace_id for s in exporter.get_finished_spans())
    assert set(by_trace.values()) <= {3}  # the request, the use case and the step: or none
    if ratio == 0.0:
        assert not by_trace
    if ratio == 1.0:
        assert len(by_trace) == requests


def test_traces_are_kept_in_the_configured_share() -> None:
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False, sample_ratio=0.25)
    try:
        for n in range(2000):
            _one_request(n)
    finally:
        stop_tracing()
    kept = len({s.context.trace_id for s in exporter.get_finished_spans()})
    assert 400 <= kept <= 600  # 500 expected; outside is a 1-in-10^6 event at this size


@pytest.mark.parametrize("flags", ["01", "00"])
def test_a_callers_decision_stands_whatever_our_ratio(flags: str) -> None:
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False, sample_ratio=0.0 if flags == "01" else 1.0)
    caller = CALLER[:-2] + flags
    traced = begin_request("GET", headers(traceparent=caller), "r-1")
    try:
        with span("use case"):
            assert current_ids()[0] == caller.split("-")[1]
    finally:
        traced.end("/exchanges", 200)
        stop_tracing()
    assert len(exporter.get_finished_spans()) == (2 if flags == "01" else 0)


def test_a_trace_started_outside_a_request_is_sampled_at_its_first_span() -> None:
    """A workflow run the sweep started has no request: its step is the trace's root."""
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False, sample_ratio=0.0)
    try:
        with span("exchange.proceed") as root:
            assert not root.is_recording() and current_ids()[0] is not None
            with span("exchange.matching._matched") as unit:
                assert not unit.is_recording()
    finally:
        stop_tracing()
    assert exporter.get_finished_spans() == ()
