"""Idempotency-Key on the old-payer FHIR operations: a retried call gets the first answer.

A partner's workflow retries a call under the same key when it lost our answer (a
timeout, a crash). The first call's writes, its answer and its audit events commit
together, in one unit of work; a retry is answered from the store and has no side
effect of its own. Calls without the header are answered and audited in one unit too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import overload

import orjson
from starlette.responses import Response

from payerbridge.api.deps import Caller
from payerbridge.api.responses import FhirResponse
from payerbridge.audit.model import AuditEvent
from payerbridge.disclosure.unit import DisclosureUnit
from payerbridge.errors import Busy, InvalidInput, Issue, PayerBridgeError, UnprocessableRequest
from payerbridge.idempotency.model import ClaimStatus, KeyClaim, StoredResponse
from payerbridge.idempotency.ports import IdempotencyStore
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = [
    "KEY_MAX_LENGTH",
    "Answer",
    "KeyedCall",
    "answer_once",
    "checked_key",
    "request_digest",
]

FHIR_JSON = "application/fhir+json"
# How long a claimed key may stay unanswered before a retry may take it over.
_STALE_AFTER = timedelta(seconds=120)
# The longest key the tables that keep keys hold (store.tables).
KEY_MAX_LENGTH = 200


@overload
def checked_key(key: str) -> str: ...
@overload
def checked_key(key: None) -> None: ...
def checked_key(key: str | None) -> str | None:
    """An Idempotency-Key header as kept (surrounding blanks dropped; None when absent),
    or a 400 that says what a key must be. Every endpoint that honours the header checks
    it here."""
    if key is None:
        return None
    if len(key) > KEY_MAX_LENGTH or not key.isprintable():
        raise InvalidInput(
            "the Idempotency-Key header is not acceptable",
            issues=[
                Issue(
                    f"send an Idempotency-Key of at most {KEY_MAX_LENGTH} printable "
                    "characters (a UUID is enough)",
                    "Idempotency-Key",
                    "invalid",
                )
            ],
        )
    return key.strip()


@dataclass
class Answer:
    """What an operation answers, and the audit events that record it (besides those its
    use case recorded on the unit). Or ``retry_later``: an error for the app's handlers to
    answer once the unit commits, not kept for a retry (the key is released), since a
    later call may be answered (429: too many attempts)."""

    body: dict[str, object] = field(default_factory=dict)
    status: int = 200
    events: list[AuditEvent] = field(default_factory=list)
    retry_later: PayerBridgeError | None = None


@dataclass(frozen=True)
class KeyedCall:
    """One call as idempotency tells calls apart: the caller, its Idempotency-Key (None
    when it sent none), the operation called and the digest of what it sent."""

    caller: Caller
    key: str | None
    operation: str
    request_hash: str


def request_digest(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


def answer_once(
    uow: DisclosureUnit, call: KeyedCall, run: Callable[[UnitOfWork], Answer]
) -> Response:
    """``run``'s answer in one transaction of ``uow`` with its writes and audit events;
    under an Idempotency-Key, the answer is kept in that transaction too, and a retry is
    answered from the store (the key is claimed first, in a transaction of its own, so
    that a retry while the first call runs is told to wait)."""
    key, client_id = call.key, call.caller.client_id
    if key is not None:
        replayed = _claim(uow, call, key)
        if replayed is not None:
            return replayed
    store = uow.idempotency
    try:
        with uow:
            answer = run(uow)
            uow.record(*answer.events)
            kept = None if key is None else _keep(uow, store, client_id, key, answer)
    except BaseException:
        if key is not None:
            with uow:
                store.release(uow, client_id, key)
        raise
    if answer.retry_later is not None:
        raise answer.retry_later
    if kept is None:
        return FhirResponse(answer.body, status_code=answer.status)
    return Response(kept, status_code=answer.status, media_type=FHIR_JSON)


def _keep(
    unit: UnitOfWork, store: IdempotencyStore, client_id: ClientId, key: str, answer: Answer
) -> str | None:
    """Keep ``answer`` for a retry under ``key`` and return its body as kept; an answer
    not to keep (``retry_later``) releases the key instead."""
    if answer.retry_later is not None:
        store.release(unit, client_id, key)
        return None
    body = orjson.dumps(answer.body).decode()
    store.complete(unit, client_id, key, StoredResponse(answer.status, FHIR_JSON, body))
    return body


def _claim(uow: DisclosureUnit, call: KeyedCall, key: str) -> Response | None:
    """Claim ``key`` for this call (None), or answer a retry of an answered call from the
    store; a key in flight or used for another request is refused."""
    with uow:
        claim = uow.idempotency.claim(
            uow,
            KeyClaim(call.caller.client_id, key, call.operation, call.request_hash, _STALE_AFTER),
            now=uow.now,
        )
    if claim.status is ClaimStatus.ANSWERED:
        assert claim.response is not None
        stored = claim.response
        return Response(stored.body, status_code=stored.status, media_type=stored.media_type)
    if claim.status is ClaimStatus.MISMATCH:
        raise UnprocessableRequest(
            "this Idempotency-Key was already used for a different request",
            issues=[
                Issue(
                    "an Idempotency-Key names one request; use a new key for a new request",
                    "Idempotency-Key",
                    "conflict",
                )
            ],
        )
    if claim.status is ClaimStatus.IN_FLIGHT:
        raise Busy("a request with this Idempotency-Key is still being processed; retry shortly")
    return None
