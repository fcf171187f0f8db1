"""Every call to a partner, sent within its answer cap and counted in the partner call
metrics (``payerbridge_partner_requests_total``, ``..._duration_seconds``) by partner,
operation, HTTP status and outcome; the operation names no ids (``partner_operation``).

A call counts whether or not an answer came: the outcome is the answer's class
(``success``, ``rejected``, ``throttled``, ``server-error``) or why none came
(``unreachable``: no connection, refused or not routed, or the name did not resolve;
``timeout``: connected, no answer in time; ``transport-error``: the connection broke
mid-answer; ``too-large``: over its cap; ``refused``: an address the egress policy
refuses), with status ``none``. The calls made before a partner's operation (its SMART
configuration, our token request) are counted too, as ``smart-configuration`` and
``token``: when the partner is down, they are the calls that fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from payerbridge.metrics import record_partner_call
from payerbridge.metrics.process import PartnerCall
from payerbridge.net.transport import AddressRefused, AnswerTooLarge, send_bounded
from payerbridge.partners.answers import send_capped
from payerbridge.routing.model import Partner

__all__ = [
    "CALL_OUTCOMES",
    "CountedCall",
    "DocumentSender",
    "answer_outcome",
    "counted_call",
    "failure_outcome",
    "partner_operation",
    "send_counted",
]

# Every outcome a call is counted under: the label's values, bounded.
CALL_OUTCOMES = (
    "success",
    "rejected",
    "throttled",
    "server-error",
    "unreachable",
    "timeout",
    "transport-error",
    "too-large",
    "refused",
)


def answer_outcome(status_code: int) -> str:
    """The class of an answer's HTTP status."""
    if status_code == 429:
        return "throttled"
    if status_code >= 500:
        return "server-error"
    return "rejected" if status_code >= 400 else "success"


def failure_outcome(exc: BaseException) -> str:
    """Why no answer came, from the exception (or the one it was raised from)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AnswerTooLarge):
            return "too-large"
        if isinstance(seen, AddressRefused):
            return "refused"
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout):
            return "unreachable"  # never connected: down, not listening, not routed
        if isinstance(seen, httpx.TimeoutException):
            return "timeout"
        if isinstance(seen, httpx.HTTPError):
            return "transport-error"
        seen = seen.__cause__
    return "transport-error"


class CountedCall:
    """What a call's count says: its status and outcome, set once an answer came."""

    status = "none"
    outcome: str | None = None

    def answered(self, status_code: int) -> None:
        self.status, self.outcome = str(status_code), answer_outcome(status_code)


@contextmanager
def counted_call(partner: Partner, method: str, operation: str) -> Iterator[CountedCall]:
    """Count the call made in the block: as answered (``CountedCall.answered``), else as
    why it failed; its time either way."""
    call = CountedCall()
    started = time.perf_counter()
    try:
        yield call
    except BaseException as exc:
        if call.outcome is None:
            call.outcome = failure_outcome(exc)
        raise
    finally:
        took = time.perf_counter() - started
        outcome = call.outcome or "transport-error"
        labels = PartnerCall(partner.id, method, operation, call.status, outcome)
        record_partner_call(labels, took)


def send_counted(
    client: httpx.Client, request: httpx.Request, partner: Partner, limit: int
) -> httpx.Response:
    """``send_bounded``, counted in the partner call metrics: its status, or why none
    came back, and how long it took."""
    operation = partner_operation(request.url.path, partner)
    with counted_call(partner, request.method, operation) as call:
        response = send_bounded(client, request, limit=limit)
        call.answered(response.status_code)
        return response


@dataclass(frozen=True)
class DocumentSender:
    """Sends the requests for a partner's documents (discovery documents, token answers)
    on ``client``, reading at most ``limit`` bytes of each answer
    (PAYERBRIDGE_PARTNER_MAX_DOCUMENT_BYTES)."""

    client: httpx.Client
    limit: int

    def send(
        self, request: httpx.Request, partner: Partner, operation: str, *, who: str
    ) -> httpx.Response:
        """``send_capped`` (our errors for what went wrong, naming ``who``), counted as a
        call to ``partner`` under ``operation`` (``token``, ``smart-configuration``)."""
        with counted_call(partner, request.method, operation) as call:
            response = send_capped(
                self.client,
                request,
                who=who,
                limit=self.limit,
                setting="PARTNER_MAX_DOCUMENT_BYTES",
            )
            call.answered(response.status_code)
            return response


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
