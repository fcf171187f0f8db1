"""The ``log`` exporter: each finished span as a JSON log line (``payerbridge.trace``),
to look at traces without a collector. Imported only when tracing is ``log``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

__all__ = ["LogSpanExporter"]

logger = logging.getLogger("payerbridge.trace")


class LogSpanExporter(SpanExporter):
    """Its ids, parent, name, kind, duration, status and attributes (ours: templates, ids
    and codes, never member data)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for finished in spans:
            context, parent = finished.context, finished.parent
            if context is None:
                continue
            started, ended = finished.start_time or 0, finished.end_time or 0
            logger.info(
                "span",
                extra={
                    "span_name": finished.name,
                    "trace_id": format_trace_id(context.trace_id),
                    "span_id": format_span_id(context.span_id),
                    "parent_span_id": format_span_id(parent.span_id) if parent else None,
                    "kind": finished.kind.name.lower(),
                    "duration_ms": round((ended - started) / 1e6, 3),
                    "status": finished.status.status_code.name.lower(),
                    "attributes": dict(finished.attributes or {}),
                },
            )
        return SpanExportResult.SUCCESS
