"""Log configuration: one JSON object per line, carrying the correlation ids of the work in hand.

Only edges (the server, the CLI) call ``configure_logging``. Modules log with
``logging.getLogger(__name__)`` and pass our internal ids as ``extra``; they never
log names, birth dates, member or subscriber ids, or resource bodies.

Every line logged in a traced context carries its ``trace_id`` (and ``span_id`` when the
span is ours), read through the function ``use_trace_ids`` was given (bootstrap gives
``tracing.current_ids``; this module imports no tracing library).

An HTTP request is logged as one line (``api/middleware.py``). What a hot path has to say
about the request it serves (``log_on_request``) goes onto that line rather than a line
of its own: each line costs the request a record, a format and a write.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson

__all__ = [
    "bind_context",
    "configure_logging",
    "current_request_id",
    "log_on_request",
    "new_request_id",
    "request_id_var",
    "request_line",
    "use_trace_ids",
]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
exchange_id_var: ContextVar[str | None] = ContextVar("exchange_id", default=None)
partner_id_var: ContextVar[str | None] = ContextVar("partner_id", default=None)
# The fields of the current request's one log line, while a request is being served.
_request_line: ContextVar[dict[str, Any] | None] = ContextVar("request_line", default=None)

TraceIds = Callable[[], tuple[str | None, str | None]]


def _untraced() -> tuple[str | None, str | None]:
    return None, None


# The current trace id and span id, where there are (``use_trace_ids``).
_trace_ids: TraceIds = _untraced
# Attributes every LogRecord has; anything else was passed through ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Keys that would carry member data; dropped even if a caller passes them by mistake.
_FORBIDDEN_KEYS = frozenset(
    {
        "name_family",
        "family",
        "given",
        "birth_date",
        "birthDate",
        "member_id",
        "subscriber_id",
        "ssn",
        "address",
        "phone",
        "body",
        "resource",
    }
)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    """A request id of our own: a UUID of version 7 (RFC 9562), which begins with the
    millisecond it was made. Ids that grow with time are added at the end of the indexes
    that hold them (the audit trail's and the exchanges' ``request_id``): a random one
    lands on a random page of each, and a commit then writes and checkpoints a page more."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, of which 74 are kept
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # the version
        | (rand >> 68) << 64  # rand_a, 12 bits
        | 0b10 << 62  # the variant
        | rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    )
    digits = f"{value:032x}"  # as str(uuid.UUID(int=value)), without building one
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


@contextmanager
def request_line(fields: dict[str, Any]) -> Iterator[None]:
    """In the block, ``log_on_request`` adds to ``fields``: those of the request's line."""
    token = _request_line.set(fields)
    try:
        yield
    finally:
        _request_line.reset(token)


def log_on_request(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` at INFO: on the current request's line, the message
    added to its ``events``, where a request is being served; else as a line of its own."""
    line = _request_line.get()
    if line is None:
        logger.info(message, extra=fields)
        return
    line.setdefault("events", []).append(message)
    line.update(fields)


def bind_context(*, exchange_id: str | None = None, partner_id: str | None = None) -> None:
    """Attach workflow ids to every log line of the current context."""
    if exchange_id is not None:
        exchange_id_var.set(exchange_id)
    if partner_id is not None:
        partner_id_var.set(partner_id)


def use_trace_ids(source: TraceIds | None) -> None:
    """Read the current trace and span ids from ``source`` for every line (None: none)."""
    global _trace_ids
    _trace_ids = source or _untraced


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, var in (
            ("request_id", request_id_var),
            ("exchange_id", exchange_id_var),
            ("partner_id", partner_id_var),
        ):
            value = var.get()
            if value is not None:
                entry[key] = value
        trace_id, span_id = _trace_ids()
        if trace_id is not None and "trace_id" not in record.__dict__:
            entry["trace_id"] = trace_id
            if span_id is not None:
                entry["span_id"] = span_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in _FORBIDDEN_KEYS and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages of library errors may quote payloads.
            entry["error_type"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints query strings, which can carry identifiers; we log requests
    # ourselves (api/middleware.py) with the path template only.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every URL at INFO; search URLs can carry identifiers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
