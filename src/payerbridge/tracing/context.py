"""The trace context of the work in hand, and the spans we record around it (ADR 0033).

Two switches, set once per process by ``tracing.setup`` (``start_tracing``):

- propagation (on by default): a caller's W3C ``traceparent`` is accepted, carried into
  the workflows the request starts and sent on every outbound call, and its trace id is
  written on our log lines and audit events, whether or not we record spans;
- recording (off by default): a tracer from the SDK; only then are spans made.

Off, each helper here costs a read of a module global (``span``: a shared empty context
manager), and the request path a look for a ``traceparent`` header. Nothing here names a
member: spans carry route templates, operations, our internal ids and codes.
"""

from __future__ import annotations

import contextlib
import random
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import FrameType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "RequestTrace",
    "answered",
    "begin_request",
    "calling_function",
    "configure",
    "continued",
    "current_ids",
    "current_trace_id",
    "current_traceparent",
    "failed",
    "is_propagating",
    "is_recording",
    "operation_of",
    "outbound_span",
    "send_trace_context",
    "span",
]

_PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent and tracestate, no baggage
_tracer: Tracer | None = None  # set while recording
_propagating = True
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
_NOTHING: AbstractContextManager[None] = nullcontext()
# Frames that are plumbing, not the function a span is named after.
_PLUMBING = frozenset({contextlib.__file__})


# The traces we start are recorded when their id's low 64 bits fall below this bound:
# the SDK's TraceIdRatioBased rule, applied here (the provider's root sampler keeps
# every root it is given), so that a trace sampled out costs no SDK span at all.
_LOW_64 = (1 << 64) - 1
_root_bound = 1 << 64
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


def configure(tracer: Tracer | None, *, propagate: bool, sample_ratio: float = 1.0) -> None:
    """Record spans with ``tracer`` (None: none), the share ``sample_ratio`` of the traces
    we start (a caller's decides for its own), and propagate trace context or not."""
    global _tracer, _propagating, _root_bound
    _tracer, _propagating = tracer, propagate
    _root_bound = round(sample_ratio * (1 << 64))


def is_recording() -> bool:
    """Whether spans are recorded here now: a tracer is set, and the current trace (if
    any) was not dropped by the sampler."""
    return _tracer is not None and not _dropped()


def is_propagating() -> bool:
    return _propagating


def span(
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span]:
    """A span around the block, the current one inside it (an error leaving the block
    marks it failed, by its type alone: messages may quote data). Not recording: the
    invalid span, which ignores what it is told."""
    if _tracer is None:
        return _OFF
    return _started(_tracer, name, attributes, kind)


def _started(
    tracer: Tracer,
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None,
    kind: SpanKind,
) -> AbstractContextManager[Span]:
    """The span, in the current trace as its sampler decided; starting a trace when there
    is none, sampled here. A dropped one is not made: an unrecorded span of the trace is
    current in the block, so what runs inside it is dropped too and logs its trace id."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return _recorded(tracer, name, attributes, kind) if context.trace_flags.sampled else _OFF
    trace_id = _new_trace_id()
    if _kept(trace_id):
        return _recorded(tracer, name, attributes, kind)
    return _current_in_block(_unrecorded(trace_id, TraceState()))


@contextmanager
def _current_in_block(current: Span) -> Iterator[Span]:
    token = otel_context.attach(trace.set_span_in_context(current))
    try:
        yield current
    finally:
        otel_context.detach(token)


def _kept(trace_id: int) -> bool:
    """Whether a trace we start is recorded: TraceIdRatioBased's rule at our ratio."""
    return trace_id & _LOW_64 < _root_bound


def _new_trace_id() -> int:
    """A random trace id, as the SDK's RandomIdGenerator makes one."""
    while (trace_id := random.getrandbits(128)) == INVALID_TRACE_ID:
        continue
    return trace_id


def _unrecorded(trace_id: int, state: TraceState) -> NonRecordingSpan:
    """A span of the trace that is not recorded, with a span id of its own (what the SDK
    makes of a span its sampler drops)."""
    while (span_id := random.getrandbits(64)) == INVALID_SPAN_ID:
        continue
    return NonRecordingSpan(
        SpanContext(trace_id, span_id, is_remote=False, trace_flags=_UNSAMPLED, trace_state=state)
    )


def _dropped() -> bool:
    """Whether the current trace is one the sampler dropped: its spans' children would be
    dropped too (the sampler follows the parent), so none is made at all."""
    context = trace.get_current_span().get_span_context()
    return context.is_valid and not context.trace_flags.sampled


@contextmanager
def _recorded(
    tracer: Tracer,
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None,
    kind: SpanKind,
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,  # an exception's message may quote a value
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as error:
            failed(current, error)
            raise


def failed(current: Span, error: BaseException) -> None:
    """Mark ``current`` failed by ``error``'s type, never its message."""
    current.set_attribute("error.type", type(error).__qualname__)
    current.set_status(Status(StatusCode.ERROR, type(error).__name__))


def calling_function(skip: int = 1) -> str:
    """``module.function`` of the caller ``skip`` frames up, past ``contextlib``'s frames
    and any context manager's ``__enter__`` (a room's unit of work, ADR 0051): a span
    around a unit of work is named after the use case that opened it. Called only while
    recording."""
    frame: FrameType | None = sys._getframe(skip + 1)
    while frame is not None and (
        frame.f_code.co_filename in _PLUMBING or frame.f_code.co_name == "__enter__"
    ):
        frame = frame.f_back
    if frame is None:
        return "unknown"
    module = str(frame.f_globals.get("__name__", "?")).removeprefix("payerbridge.")
    return f"{module}.{frame.f_code.co_qualname}"


# -- trace context in and out -----------------------------------------------------------


def _extracted(traceparent: str, tracestate: str | None = None) -> Context | None:
    """The remote parent a W3C ``traceparent`` names; None when it is not a valid one
    (W3C: a malformed header is ignored, and a new trace starts)."""
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    parent = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(parent).get_span_context().is_valid:
        return None
    return parent


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current context (what a workflow started now continues),
    or None when there is none or propagation is off."""
    if not _propagating:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def continued(traceparent: str | None) -> AbstractContextManager[None]:
    """The block runs in the trace ``traceparent`` names (a workflow continuing the request
    that started it, in another process or days later); as it is when there is none."""
    if not traceparent or not _propagating:
        return _NOTHING
    parent = _extracted(traceparent)
    if parent is None:
        return _NOTHING
    return _attached(parent)


@contextmanager
def _attached(parent: Context) -> Iterator[None]:
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)


def send_trace_context(headers: MutableMapping[str, str]) -> None:
    """Add the current ``traceparent`` (and ``tracestate``) to an outbound call's headers:
    the partner continues our trace (or our caller's, when we record none)."""
    if _propagating:
        _PROPAGATOR.inject(headers)


def current_ids() -> tuple[str | None, str | None]:
    """The current trace id, and the current span's id when the span is ours (not a
    caller's, which is all there is when we only propagate), as lowercase hex."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    span_id = None if context.is_remote else trace.format_span_id(context.span_id)
    return trace.format_trace_id(context.trace_id), span_id


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


# -- an outbound call ------------------------------------------------------------------------

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def outbound_span(
    method: str, host: str, port: int | None, path: str
) -> AbstractContextManager[Span]:
    """A client span around an outbound call, named by the method and the FHIR operation
    or resource type of the path (never the path or query itself: they may carry ids)."""
    if _tracer is None or _dropped():
        return _OFF
    attributes: dict[str, str | int | float | bool] = {
        "http.request.method": method,
        "server.address": host,
    }
    if port is not None:
        attributes["server.port"] = port
    operation = operation_of(path)
    name = f"{method} {operation}" if operation else method
    return _started(_tracer, name, attributes, SpanKind.CLIENT)


def operation_of(path: str) -> str:
    """``$member-match`` of ``/fhir/Patient/$member-match``, ``Patient`` of a read or a
    search of Patients; empty when the path names neither."""
    segments = [segment for segment in path.split("/") if segment]
    for segment in reversed(segments):
        if segment.startswith("$"):
            return segment[:64]
    for segment in reversed(segments):
        if _RESOURCE_TYPE.match(segment):
            return segment
    return ""


def answered(current: Span, status: int) -> None:
    """Note an outbound call's answer on its span: 4xx and 5xx are failures."""
    current.set_attribute("http.response.status_code", status)
    if status >= 400:
        current.set_status(Status(StatusCode.ERROR))


# -- the server side of a request ---------------------------------------------------------


class RequestTrace:
    """The trace context a request runs in, attached until ``end``: the caller's when it
    sent one, and our server span when recording."""

    __slots__ = ("_current", "_method", "_token")

    def __init__(self, token: Any, current: Span | None, method: str) -> None:
        self._token = token
        self._current = current
        self._method = method

    def end(self, route: str | None, status: int | None) -> None:
        """Name the span by the route template (never the path: it may carry an id),
        note the status (none sent: a 500) and detach the request's context."""
        current = self._current
        if current is not None:
            if route is not None:
                current.update_name(f"{self._method} {route}")
                current.set_attribute("http.route", route)
            current.set_attribute("http.response.status_code", status or 500)
            if status is None or status >= 500:
                current.set_status(Status(StatusCode.ERROR))
            current.end()
        if self._token is not None:
            otel_context.detach(self._token)


_UNTRACED = RequestTrace(None, None, "")


def begin_request(method: str, headers: list[tuple[bytes, bytes]], request_id: str) -> RequestTrace:
    """The trace of an incoming request (ASGI ``headers``): continues the caller's
    ``traceparent`` when propagating; a server span under it when recording."""
    if _tracer is None and not _propagating:
        return _UNTRACED
    parent = _caller_context(headers) if _propagating else None
    if _tracer is None:
        if parent is None:
            return _UNTRACED
        return RequestTrace(otel_context.attach(parent), None, method)
    caller = None if parent is None else trace.get_current_span(parent).get_span_context()
    dropped = None
    if caller is None:
        trace_id = _new_trace_id()
        if not _kept(trace_id):
            dropped = _unrecorded(trace_id, TraceState())
    elif not caller.trace_flags.sampled:  # the caller's decision: no span of ours
        dropped = _unrecorded(caller.trace_id, caller.trace_state)
    if dropped is not None:
        return RequestTrace(
            otel_context.attach(trace.set_span_in_context(dropped, parent)), None, method
        )
    current = _tracer.start_span(
        f"{method}",  # named by its route once routed (RequestTrace.end)
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "payerbridge.request_id": request_id},
    )
    token = otel_context.attach(trace.set_span_in_context(current, parent))
    return RequestTrace(token, current, method)


def _caller_context(headers: list[tuple[bytes, bytes]]) -> Context | None:
    traceparent = tracestate = None
    for name, value in headers:  # ASGI servers give header names in lower case
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    if traceparent is None:
        return None
    return _extracted(traceparent, tracestate)
