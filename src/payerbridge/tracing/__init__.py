"""Tracing with OpenTelemetry (ADR 0033): W3C trace context accepted from callers, carried
into workflows and sent to partners (``context``), spans recorded and exported when
configured (``setup``). The rooms never import it: spans are made at the edges, the
workflows and the adapters."""

from payerbridge.tracing.context import (
    RequestTrace,
    answered,
    begin_request,
    calling_function,
    continued,
    current_ids,
    current_trace_id,
    current_traceparent,
    is_recording,
    outbound_span,
    send_trace_context,
    span,
)
from payerbridge.tracing.setup import (
    TracingMode,
    TracingSettings,
    record_with,
    start_tracing,
    stop_tracing,
)

__all__ = [
    "RequestTrace",
    "answered",
    "TracingMode",
    "TracingSettings",
    "begin_request",
    "calling_function",
    "continued",
    "current_ids",
    "current_trace_id",
    "current_traceparent",
    "is_recording",
    "outbound_span",
    "record_with",
    "send_trace_context",
    "span",
    "start_tracing",
    "stop_tracing",
]
