"""Use cases of an outbound exchange (new-payer role), one function per workflow step.

Each step reads the exchange, talks to one port, and records exactly one state
transition (with its audit event) in the same transaction as its result. The
durable workflow in ``workflows/exchange.py`` calls them in order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection

from payerbridge.errors import (
    AmbiguousMatch,
    ConsentError,
    Issue,
    NoMatch,
    PartnerRejected,
    UnprocessableRequest,
)
from payerbridge.exchange.model import ExchangeRequest, ExchangeState
from payerbridge.exchange.normalize import normalize_everything_bundle
from payerbridge.fhir.member_match import (
    MemberMatchResult,
    build_member_match_request,
)
from payerbridge.routing.model import Organization, Partner

__all__ = [
    "ExchangePorts",
    "PartnerClient",
    "StepResult",
    "fail",
    "match",
    "normalize",
    "prepare",
    "retrieve",
    "submit_exchange",
]

logger = logging.getLogger(__name__)
S = ExchangeState
SYSTEM_ACTOR = "payerbridge"


class PartnerClient(Protocol):
    def member_match(
        self, partner: Partner, parameters: dict[str, Any], *, idempotency_key: str
    ) -> MemberMatchResult: ...

    def everything(self, partner: Partner, member_ref: str, *, idempotency_key: str) -> bytes: ...


class PartnerDirectory(Protocol):
    def get(self, partner_id: str) -> Partner | None: ...


class ExchangeStore(Protocol):
    def create(self, **kwargs: Any) -> None: ...
    def transition(self, exchange_id: str, target: ExchangeState, **kwargs: Any) -> None: ...
    def get(self, exchange_id: str) -> Any: ...
    def save_payload_with(
        self, exchange_id: str, body: str, sha256: str, at: datetime
    ) -> Callable[[Connection], None]: ...
    def payload(self, exchange_id: str) -> str: ...


class ResourceWriter(Protocol):
    def write_with(
        self, resources: list[tuple[dict[str, Any], str | None]], *, source: str, at: datetime
    ) -> Callable[[Connection], None]: ...


@dataclass(frozen=True)
class ExchangePorts:
    exchanges: ExchangeStore
    partners: PartnerDirectory
    client: PartnerClient
    writer: ResourceWriter
    us: Organization
    clock: Callable[[], datetime]
    new_id: Callable[[], str]


@dataclass(frozen=True)
class StepResult:
    """Where the step left the exchange; ``done`` when no further step should run."""

    state: ExchangeState
    done: bool = False


def request_hash(raw: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def submit_exchange(
    ports: ExchangePorts,
    request: ExchangeRequest,
    raw: dict[str, Any],
    *,
    client_id: str,
    request_id: str | None,
) -> str:
    """Record a new exchange in ``submitted``; the workflow takes it from there."""
    if ports.partners.get(request.old_payer) is None:
        raise UnprocessableRequest(
            f"no partner is registered with id '{request.old_payer}'",
            issues=[
                Issue(
                    f"no partner is registered with id '{request.old_payer}'; register it "
                    "with `payerbridge partners add` or POST /partners",
                    "old_payer",
                    "not-found",
                )
            ],
        )
    exchange_id = ports.new_id()
    ports.exchanges.create(
        exchange_id=exchange_id,
        partner_id=request.old_payer,
        client_id=client_id,
        request=raw,
        request_hash=request_hash(raw),
        at=ports.clock(),
        request_id=request_id,
    )
    logger.info(
        "exchange submitted", extra={"exchange_id": exchange_id, "partner_id": request.old_payer}
    )
    return exchange_id


def fail(ports: ExchangePorts, exchange_id: str, code: str, text: str) -> StepResult:
    """Give up on an exchange (for a step whose retries are spent); a no-op once terminal."""
    state = ports.exchanges.get(exchange_id).state
    if state in (S.COMPLETED, S.FAILED):
        return StepResult(state, done=True)
    return _fail(ports, exchange_id, code, text)


def _fail(
    ports: ExchangePorts,
    exchange_id: str,
    code: str,
    text: str,
    detail: dict[str, Any] | None = None,
) -> StepResult:
    ports.exchanges.transition(
        exchange_id,
        S.FAILED,
        at=ports.clock(),
        actor=SYSTEM_ACTOR,
        reason_code=code,
        detail=detail,
        updates={"error_code": code, "error_text": text},
    )
    logger.warning("exchange failed", extra={"exchange_id": exchange_id, "reason_code": code})
    return StepResult(S.FAILED, done=True)


def _advance(ports: ExchangePorts, exchange_id: str, target: ExchangeState, **kwargs: Any) -> None:
    ports.exchanges.transition(exchange_id, target, at=ports.clock(), actor=SYSTEM_ACTOR, **kwargs)


def prepare(ports: ExchangePorts, exchange_id: str, request: ExchangeRequest) -> StepResult:
    """submitted → validated → consent_verified → route_selected, or blocked/failed."""
    record = ports.exchanges.get(exchange_id)
    if record.state is not S.SUBMITTED:
        return StepResult(record.state, done=record.state in (S.FAILED, S.BLOCKED))
    _advance(ports, exchange_id, S.VALIDATED)
    today: date = ports.clock().date()
    consent = request.consent
    if not consent.start <= today <= consent.end:
        code = "consent-expired" if today > consent.end else "consent-not-yet-valid"
        _advance(
            ports,
            exchange_id,
            S.BLOCKED,
            reason_code=code,
            updates={
                "error_code": code,
                "error_text": "the member's consent period does not include today",
            },
        )
        return StepResult(S.BLOCKED, done=True)
    _advance(ports, exchange_id, S.CONSENT_VERIFIED, detail={"policy": consent.policy})
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    _advance(
        ports,
        exchange_id,
        S.ROUTE_SELECTED,
        detail={"partner_id": partner.id, "endpoint": partner.fhir_base},
    )
    return StepResult(S.ROUTE_SELECTED)


def match(ports: ExchangePorts, exchange_id: str, request: ExchangeRequest) -> StepResult:
    """route_selected → member_matched via the partner's $member-match."""
    state = ports.exchanges.get(exchange_id).state
    if state is not S.ROUTE_SELECTED:
        return StepResult(state, done=state in (S.FAILED, S.BLOCKED))  # done before a restart
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    parameters = build_member_match_request(
        request,
        our_name=ports.us.name,
        our_npi=ports.us.npi,
        partner_name=partner.name,
        partner_npi=partner.npi,
    )
    try:
        result = ports.client.member_match(
            partner, parameters, idempotency_key=f"{exchange_id}:member-match"
        )
    except (NoMatch, AmbiguousMatch, ConsentError) as exc:
        code = {NoMatch: "no-match", AmbiguousMatch: "multiple-matches"}.get(
            type(exc), "consent-refused"
        )
        return _fail(ports, exchange_id, code, exc.text)
    except PartnerRejected as exc:
        return _fail(ports, exchange_id, "partner-error", exc.text, {"status": exc.status})
    member_ref = result.member_ref
    if member_ref is None:
        return _fail(
            ports,
            exchange_id,
            "member-id-missing",
            "the partner returned no MemberId; identifier resolution is not supported yet",
        )
    _advance(
        ports,
        exchange_id,
        S.MEMBER_MATCHED,
        updates={"matched_member_ref": member_ref, "member_identifier": result.identifier_value},
    )
    return StepResult(S.MEMBER_MATCHED)


def retrieve(ports: ExchangePorts, exchange_id: str, request: ExchangeRequest) -> StepResult:
    """member_matched → retrieving → received: fetch $everything and keep it verbatim."""
    record = ports.exchanges.get(exchange_id)
    partner = ports.partners.get(request.old_payer)
    if partner is None or record.matched_member_ref is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    if record.state not in (S.MEMBER_MATCHED, S.RETRIEVING):
        return StepResult(record.state)  # already received before a restart
    if record.state is S.MEMBER_MATCHED:
        _advance(ports, exchange_id, S.RETRIEVING)
    try:
        body = ports.client.everything(
            partner, record.matched_member_ref, idempotency_key=f"{exchange_id}:everything"
        )
    except PartnerRejected as exc:
        return _fail(ports, exchange_id, "partner-error", exc.text, {"status": exc.status})
    digest = hashlib.sha256(body).hexdigest()
    at = ports.clock()
    _advance(
        ports,
        exchange_id,
        S.RECEIVED,
        detail={"bytes": len(body), "sha256": digest},
        also=ports.exchanges.save_payload_with(exchange_id, body.decode(), digest, at),
    )
    return StepResult(S.RECEIVED)


def normalize(ports: ExchangePorts, exchange_id: str, request: ExchangeRequest) -> StepResult:
    """received → normalized → completed: store the resources under our ids with Provenance."""
    state = ports.exchanges.get(exchange_id).state
    if state is S.NORMALIZED:  # stored before a restart; only the last transition is missing
        _advance(ports, exchange_id, S.COMPLETED)
        return StepResult(S.COMPLETED, done=True)
    if state is not S.RECEIVED:
        return StepResult(state, done=True)
    partner = ports.partners.get(request.old_payer)
    if partner is None:
        return _fail(ports, exchange_id, "unknown-partner", "the partner is no longer registered")
    try:
        bundle = orjson.loads(ports.exchanges.payload(exchange_id))
        normalized = normalize_everything_bundle(
            bundle,
            new_id=ports.new_id,
            received_at=ports.clock(),
            us=ports.us,
            old_payer=partner.organization,
            exchange_id=exchange_id,
        )
    except (orjson.JSONDecodeError, PartnerRejected) as exc:
        text = exc.text if isinstance(exc, PartnerRejected) else "the Bundle is not valid JSON"
        return _fail(ports, exchange_id, "invalid-payload", text)
    at = ports.clock()
    _advance(
        ports,
        exchange_id,
        S.NORMALIZED,
        detail={
            "resources": dict(normalized.counts),
            "skipped": dict(normalized.skipped),
            "unresolved_references": normalized.unresolved_references,
        },
        updates={
            "imported_patient_id": normalized.patient_id,
            "resource_count": sum(normalized.counts.values()),
        },
        also=ports.writer.write_with(normalized.resources, source=f"exchange:{exchange_id}", at=at),
    )
    _advance(ports, exchange_id, S.COMPLETED)
    logger.info(
        "exchange completed",
        extra={"exchange_id": exchange_id, "resources": sum(normalized.counts.values())},
    )
    return StepResult(S.COMPLETED, done=True)
