"""One call to a partner, sent within its answer cap and counted in the partner call
metrics (``payerbridge_partner_requests_total``, ``..._duration_seconds``) by partner,
operation and status; the operation names no ids (``partner_operation``)."""

from __future__ import annotations

import time

import httpx

from payerbridge.metrics import record_partner_call
from payerbridge.net.transport import AddressRefused, AnswerTooLarge, send_bounded
from payerbridge.routing.model import Partner

__all__ = ["partner_operation", "send_counted"]


def send_counted(
    client: httpx.Client, request: httpx.Request, partner: Partner, limit: int
) -> httpx.Response:
    """``send_bounded``, counted in the partner call metrics: its status, or why none
    came back, and how long it took."""
    started = time.perf_counter()
    status = "unreachable"
    try:
        response = send_bounded(client, request, limit=limit)
        status = str(response.status_code)
        return response
    except AnswerTooLarge:
        status = "too-large"
        raise
    except AddressRefused:
        status = "refused"
        raise
    finally:
        operation = partner_operation(request.url.path, partner)
        took = time.perf_counter() - started
        record_partner_call(partner.id, request.method, operation, status, took)


def partner_operation(path: str, partner: Partner) -> str:
    """A call's operation as a metric names it, without the ids its path carries:
    ``$member-match``, ``$everything``, ``Coverage`` (a search or a read), ``bulk-status``
    (a status URL's first segment); ``base`` for the base itself."""
    base = httpx.URL(partner.fhir_base).path.rstrip("/")
    segments = [s for s in path.removeprefix(base).split("/") if s]
    operations = [s for s in segments if s.startswith("$")]
    if operations:
        return operations[-1]
    return segments[0] if segments else "base"
