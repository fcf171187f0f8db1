"""The store's part of a trace (ADR 0033): a span per unit of work, named after the use
case that opened it; one per statement SQLAlchemy runs (the hot paths' statements on
driver cursors are inside their unit's span, or their request's). The trace id in the
detail of the audit events a unit records is added where they are written
(``store.audit_append.append_events``).

Spans name tables and operations, never parameters: a statement's values may be a
member's. Not recording, each costs a module global's read, and statements are not
listened to at all.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import Engine, event

from payerbridge.tracing import calling_function, current_trace_id, is_recording, span

__all__ = ["summary_of", "trace_statements", "unit_span"]

_UNTRACED: AbstractContextManager[None] = nullcontext()
_SPAN_KEY = "payerbridge.span"  # the statement's span, in the execution context's connection info
# A statement's summary (OpenTelemetry's db.query.summary): its operation and the first
# table it names, enough to tell statements apart without their text.
_OPERATION = re.compile(r"^\s*([A-Za-z]+)")
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


def unit_span(system: str) -> AbstractContextManager[Any]:
    """A span around a unit of work: the use case that began it (two frames up, past
    ``contextlib``), on the database ``system``."""
    if not is_recording():
        return _UNTRACED
    use_case = calling_function(2)
    return span(use_case, {"db.system.name": system, "code.function.name": use_case})


def summary_of(statement: str) -> str:
    """``SELECT exchanges`` of a statement that selects from ``exchanges``."""
    operation = _OPERATION.match(statement)
    if operation is None:
        return "SQL"
    table = _TABLE.search(statement)
    name = operation.group(1).upper()
    return f"{name} {table.group(1)}" if table else name


def trace_statements(*engines: Engine) -> None:
    """A span per statement the ``engines`` run through SQLAlchemy in a trace (while
    recording)."""
    for engine in engines:
        if not event.contains(engine, "before_cursor_execute", _before):
            event.listen(engine, "before_cursor_execute", _before)
            event.listen(engine, "after_cursor_execute", _after)
            event.listen(engine, "handle_error", _error)


def _before(
    connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    if not is_recording() or current_trace_id() is None:
        return  # a statement outside a request, a step or a unit (an upkeep's) starts no trace
    system = connection.dialect.name
    manager = span(summary_of(statement), {"db.system.name": system})
    manager.__enter__()
    connection.info[_SPAN_KEY] = manager


def _after(
    connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    manager = connection.info.pop(_SPAN_KEY, None)
    if manager is not None:
        manager.__exit__(None, None, None)


def _error(context: Any) -> None:
    connection = context.connection
    manager = connection.info.pop(_SPAN_KEY, None) if connection is not None else None
    if manager is not None:
        error = context.original_exception  # the span fails by its type (tracing.span)
        manager.__exit__(type(error), error, error.__traceback__)
