"""The new-payer exchange API: submit (202 + Location, idempotent), follow, replay (or ask
again for an exchange that ended ``partial`` or ``conflict``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Request, Response

from payerbridge.api.deps import AuditReaderDep, OperatorDep, PlatformDep, SubmitterDep
from payerbridge.api.idempotency import checked_key
from payerbridge.api.responses import JsonResponse
from payerbridge.api.schemas import ExchangeCreate
from payerbridge.api.units import ExchangeUnitDep
from payerbridge.delivery.model import exchange_subject
from payerbridge.errors import InvalidInput, Issue, NotFound
from payerbridge.exchange.intake.submission import ExchangeSubmission, submit_exchange
from payerbridge.exchange.model import DATA_ENDS, DeadLetter, ExchangeRecord
from payerbridge.exchange.operations.interventions import ask_again_now, cancel, replay
from payerbridge.exchange.operations.search import search_exchanges
from payerbridge.exchange.operations.search_params import exchange_query
from payerbridge.exchange.operations.timeline import audit_of_exchange
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.logging import current_request_id
from payerbridge.security.break_glass import masked
from payerbridge.timestamps import utc_iso
from payerbridge.types import ExchangeId
from payerbridge.workflows.exchange import enqueue_exchange, enqueue_start

__all__ = ["router"]

router = APIRouter(prefix="/exchanges", default_response_class=JsonResponse, tags=["exchanges"])


def _identifier_for(record_client: str, value: str | None, reader: str) -> str | None:
    """The member's identifier at the old payer as ``reader`` may see it: whole by the
    client whose exchange it is, masked for an operator or auditor reading another's
    (ADR 0038: the console's break-glass grant is how a person sees it whole)."""
    return value if value is None or record_client == reader else masked(value)


def exchange_public(
    record: ExchangeRecord, letter: DeadLetter | None = None, *, reader: str
) -> dict[str, Any]:
    """The exchange as the API shows it to ``reader``: state, outcome, retries, and the
    ordered history (the history only where the record carries it: not in lists)."""
    return {
        "id": record.id,
        "state": record.state.value,
        "old_payer": record.partner_id,
        "consent_id": record.consent_id,
        "client_id": record.client_id,
        "request_id": record.request_id,
        "member_key": record.member_key,
        "created_at": utc_iso(record.created_at),
        "updated_at": utc_iso(record.updated_at),
        "matched_member": record.matched_member_ref,
        "member_identifier": _identifier_for(record.client_id, record.member_identifier, reader),
        "imported_patient_id": record.imported_patient_id,
        "resource_count": record.resource_count,
        "since": utc_iso(record.since) if record.since else None,
        "received_at": utc_iso(received) if (received := record.last_received_at) else None,
        "error": {"code": record.error_code, "text": record.error_text}
        if record.error_code
        else None,
        "step": record.current_step,
        "attempts": record.attempts,
        "next_retry_at": utc_iso(record.next_attempt_at) if record.next_attempt_at else None,
        "last_error": record.last_error,
        "deadline_at": utc_iso(record.deadline_at) if record.deadline_at else None,
        "replays": record.replay_count,
        "dead_letter": _dead_letter_public(letter) if letter else None,
        "route": _route(record),
        "completeness": _completeness(record),
        "history": [
            {
                "seq": t.seq,
                "from": t.from_state,
                "to": t.to_state,
                "at": utc_iso(t.at),
                "actor": t.actor,
                "reason_code": t.reason_code,
                "detail": t.detail,
                "policy_version": t.policy_version,
            }
            for t in record.transitions
        ],
    }


def _route(record: ExchangeRecord) -> dict[str, Any] | None:
    """The last route decided (a replay decides again): chosen, rejected and why."""
    for transition in reversed(record.transitions):
        route = (transition.detail or {}).get("route")
        if route is not None:
            return dict(route)
    return None


def _completeness(record: ExchangeRecord) -> dict[str, Any] | None:
    """How complete the stored answer was, once the exchange ended with its data: what it
    lacked (per source and types, why, whether asking again may help), where sources
    disagreed (refs and field paths), and what was updated or removed of what we held.
    Lists leave it out (no history); an exchange asked again shows it when it ends again."""
    if record.state not in DATA_ENDS:
        return None
    for transition in reversed(record.transitions):
        found = (transition.detail or {}).get("completeness")
        if transition.to_state == record.state.value and found is not None:
            gaps = found.get("gaps") or []
            return {
                "complete": not gaps,
                "retry_may_help": any(g.get("retry_may_help") for g in gaps),
                **found,
            }
    return None


def _dead_letter_public(letter: DeadLetter) -> dict[str, Any]:
    return {
        "step": letter.step,
        "reason_code": letter.reason_code,
        "last_error": letter.last_error,
        "attempts": letter.attempts,
        "policy": letter.policy_snapshot,
        "last_route": letter.last_route,
        "request_sha256": letter.request_sha256,
        "payload_sha256": letter.payload_sha256,
        "at": utc_iso(letter.dead_lettered_at),
        "replayed_at": utc_iso(letter.replayed_at) if letter.replayed_at else None,
        "replayed_by": letter.replayed_by,
    }


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Required: a unique key per request; a retry with the same key and "
        "body returns the original exchange.",
    ),
]


def _checked_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise InvalidInput(
            "POST /exchanges needs an Idempotency-Key header",
            issues=[
                Issue(
                    "send a unique Idempotency-Key header (e.g. a UUID) with each new "
                    "exchange; resend the same key when retrying",
                    "Idempotency-Key",
                    "required",
                )
            ],
        )
    return checked_key(key)


def _submission(
    body: ExchangeCreate, caller: SubmitterDep, idempotency_key: IdempotencyKey = None
) -> ExchangeSubmission:
    """The request as ``submit_exchange`` takes it: what the client sent, under its key."""
    return ExchangeSubmission(
        body.to_domain(),
        body.model_dump(mode="json"),
        client_id=caller.client_id,
        idempotency_key=_checked_key(idempotency_key),
        request_id=current_request_id(),
    )


@router.post("", status_code=202)
def create_exchange(
    submission: Annotated[ExchangeSubmission, Depends(_submission)],
    uow: ExchangeUnitDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """202 + Location for a new exchange; 200 with the original for a repeated key."""
    submitted = submit_exchange(submission, uow)
    record = uow.exchanges.get(submitted.exchange_id)  # as submitted, before it runs
    enqueue_start(submitted.start)  # a no-op when the workflow exists
    if not submitted.is_new:
        response.status_code = 200
    response.headers["Location"] = str(request.url_for("get_exchange", exchange_id=record.id))
    return exchange_public(
        record, uow.exchanges.dead_letter(record.id), reader=submission.client_id
    )


@router.get("")
def list_exchanges(
    request: Request,
    response: Response,
    platform: PlatformDep,
    uow: ExchangeUnitDep,
    caller: AuditReaderDep,
) -> dict[str, Any]:
    """The caller's exchanges (an operator's or auditor's: everyone's), newest first, searched by
    member, partner, client, request id, state, reason code and dates
    (``exchange/operations/search_params.py``); ``next`` (and ``Link: rel=next``) is the
    next page."""
    page = search_exchanges(
        exchange_query(request.query_params.multi_items()),
        uow.search,
        viewer=None if caller.sees_everyone else caller.client_id,
    )
    following = None
    if page.next is not None:  # on the configured base: the Host header is the caller's
        params = [(n, v) for n, v in request.query_params.multi_items() if n != "_cursor"]
        query = urlencode([*params, ("_cursor", page.next.encode())])
        following = f"{platform.settings.base_url}/exchanges?{query}"
        response.headers["Link"] = f'<{following}>; rel="next"'
    return {
        "total": page.total,
        "count": len(page.items),
        "next": following,
        "items": [exchange_public(record, reader=caller.client_id) for record in page.items],
    }


@router.get("/{exchange_id}", name="get_exchange")
def get_exchange(
    exchange_id: str, uow: ExchangeUnitDep, caller: AuditReaderDep, platform: PlatformDep
) -> dict[str, Any]:
    """One of the caller's exchanges; another client's answers 404, as a missing one.
    ``delivery``: where what it received went on to (ADR 0053), the latest run's first."""
    found = ExchangeId(exchange_id)
    record = uow.exchanges.get(found)
    if not caller.sees_everyone and record.client_id != caller.client_id:
        raise NotFound(f"exchange {exchange_id[:64]} does not exist")
    public = exchange_public(record, uow.exchanges.dead_letter(found), reader=caller.client_id)
    destinations = platform.units.destinations()
    deliveries = destinations.deliveries.of_subject(exchange_subject(found)) if destinations else []
    return {**public, "delivery": [d.to_json() for d in deliveries]}


@router.get("/{exchange_id}/audit")
def get_exchange_audit(
    exchange_id: str, request: Request, uow: ExchangeUnitDep, caller: AuditReaderDep
) -> dict[str, Any]:
    """The exchange's whole life from its audit trail, in order
    (``exchange/operations/timeline.py``): intake, consent decisions, route, the old
    payer's answer, every partner call with status and latency, retries, the final state.
    Its client's, an operator's, an auditor's; another client's answers 404. It takes no
    parameter."""
    if request.query_params:
        names = ", ".join(sorted({n[:40] for n in request.query_params}))
        text = f"the audit of an exchange takes no parameters ({names})"
        raise InvalidInput(text, issues=[Issue(text, names, "not-supported")])
    timeline = audit_of_exchange(
        ExchangeId(exchange_id),
        viewer=None if caller.sees_everyone else caller.client_id,
        exchanges=uow.exchanges,
        audit=uow.audit_reader,
    ).to_json()
    identity = timeline["identity"]
    if identity is not None:
        identity["member_identifier"] = _identifier_for(
            timeline["client_id"], identity["member_identifier"], caller.client_id
        )
    return timeline


def _operator_view(uow: ExchangeUnit, found: ExchangeId, operator: str) -> dict[str, Any]:
    """The exchange as an operator's action left it."""
    record = uow.exchanges.get(found)
    return exchange_public(record, uow.exchanges.dead_letter(found), reader=operator)


@router.post("/{exchange_id}/$replay")
def replay_exchange(
    exchange_id: str,
    uow: ExchangeUnitDep,
    operator: OperatorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Operators only: resume a dead-lettered exchange, or ask the old payer again for one
    that ended ``partial`` or ``conflict``, after re-checking consent and identity; what
    it sends then updates what we hold. Repeating the call with the same Idempotency-Key
    changes nothing."""
    key = _checked_key(idempotency_key) if idempotency_key is not None else None
    found = ExchangeId(exchange_id)
    replayed = replay(uow, found, actor=operator.client_id, replay_key=key)
    record = uow.exchanges.get(found)
    if replayed:
        enqueue_exchange(record.id, record.partner_id, replay_count=record.replay_count)
    return exchange_public(record, uow.exchanges.dead_letter(found), reader=operator.client_id)


@router.post("/{exchange_id}/$cancel")
def cancel_exchange(
    exchange_id: str, body: dict[str, Any], uow: ExchangeUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """Operators only: end an exchange that waits (on a review here or at the old payer,
    a replay, or its next attempt) as ``failed``/``cancelled``, with ``note`` saying why.
    An exchange running a step now is a 409: cancel it when it waits."""
    note = body.get("note")
    if not isinstance(note, str) or not note.strip() or set(body) - {"note"}:
        text = 'the body is {"note": "why the exchange is cancelled"} and nothing else'
        raise InvalidInput(text, issues=[Issue(text, "note", "required")])
    found = ExchangeId(exchange_id)
    uow.exchanges.current(found)  # 404 before anything else
    cancel(uow, found, actor=operator.client_id, note=note.strip()[:500])
    return _operator_view(uow, found, operator.client_id)


@router.post("/{exchange_id}/$resubmit")
def resubmit_exchange(
    exchange_id: str, uow: ExchangeUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """Operators only: ask the old payer again now about a match it has under review,
    instead of at the next poll (the sweep starts the run within its period)."""
    found = ExchangeId(exchange_id)
    ask_again_now(uow, found, actor=operator.client_id)
    return _operator_view(uow, found, operator.client_id)
