"""What ``bench console`` loads before it times a page: a plan's members in the identity
index, and the exchanges of months of operation, each with its history and audit trail.

The members are ``bench.identity_data``'s (a Patient and a Coverage each), imported and
indexed as ``payerbridge import`` does, a model trained as ``identity train`` does. The
exchanges are written by the product's own use cases and stores, in process: each is
submitted (``submit_exchange``: its opt-in, its row, its audit events), then moved along
the path of the end drawn for it (``ENDS``) in units of work of ``BATCH`` exchanges, each
move with its audit event, the partner calls in the moves' detail as the steps write them,
dead letters filed, attempts noted. Their creation times spread over ``DAYS`` days, their
clients over ``CLIENTS`` and their old payers over ``PARTNERS`` (registered without being
read: nothing calls them). Nothing about the people is logged or printed.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from payerbridge.exchange.model import (
    Attempt,
    DeadLetter,
    ExchangeState,
    Move,
)
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.types import ClientId, ExchangeId, PartnerId
from payerbridge_tools.bench.identity_data import IdentitySet

__all__ = [
    "BATCH",
    "CLIENTS",
    "DAYS",
    "ENDS",
    "PARTNERS",
    "Fleet",
    "load_exchanges",
    "moves_to",
    "request_document",
]

S = ExchangeState
PARTNERS, CLIENTS, DAYS, BATCH = 8, 5, 90, 250
_PARTNER_NPI = "1245319599"
# Where exchanges end, per thousand: most complete; the rest are what operators look at.
ENDS: tuple[tuple[str, int], ...] = (
    ("completed", 600),
    ("no-match", 50),
    ("partner-error", 20),
    ("no-route", 10),
    ("cancelled", 10),
    ("partial", 50),
    ("conflict", 15),
    ("dead-lettered", 50),
    ("revoked", 20),
    ("expired", 10),
    ("partner-review", 25),
    ("waiting", 60),
    ("submitted", 80),
)
_FAILED = {
    "no-match": ExchangeReason.NO_MATCH,
    "partner-error": ExchangeReason.PARTNER_ERROR,
}


@dataclass(frozen=True)
class Fleet:
    """What was loaded, for the pages to ask about."""

    exchange_ids: tuple[ExchangeId, ...]
    member_ids: tuple[str, ...]  # our member id of each exchange, in the same order
    request_ids: tuple[str, ...]
    partners: tuple[PartnerId, ...]
    clients: tuple[ClientId, ...]
    first_day: datetime
    seconds: float  # writing them


def request_document(
    data: IdentitySet, i: int, partner: PartnerId, day: datetime
) -> dict[str, Any]:
    """The body a plan's system posts to ``/exchanges`` for member ``i`` (its demographics
    as the old payer holds them, its new card naming it by ``member_id(i)``)."""
    fields = data.member_fields(i)
    gender = fields.get("sex") if fields.get("sex") in ("male", "female") else "unknown"
    member: dict[str, Any] = {
        "given": list(fields["given"])[:5],
        "family": fields["family"],
        "birth_date": fields["birth_date"],
        "gender": gender,
        "address": {
            "line": list(fields["address_lines"])[:4],
            "postal_code": fields["postal_code"],
        },
    }
    old_card = fields.get("member_id") or fields.get("subscriber_id") or f"OLD-{i}"
    return {
        "old_payer": partner,
        "member": member,
        "old_coverage": {"member_id": old_card, "relationship": "self"},
        "new_coverage": {"member_id": str(data.member_id(i)), "relationship": "self"},
        "consent": {
            "policy": "regular" if i % 4 else "sensitive",
            "start": (day - timedelta(days=1)).date().isoformat(),
            "end": (day + timedelta(days=365)).date().isoformat(),
            "source_reference": f"DocumentReference/opt-in-{i}",
        },
    }


def _call(step: str, endpoint: str, at: datetime, rng: random.Random, **kw: Any) -> dict[str, Any]:
    """A partner call as the steps keep it in a move's detail (``PartnerCall.to_json``)."""
    return {
        "step": step,
        "attempt": kw.get("attempt", 1),
        "endpoint": endpoint,
        "at": at.isoformat(),
        "latency_ms": rng.randint(40, 900),
        "outcome": kw.get("outcome", "answered"),
        "status": kw.get("status", 200),
        "error": kw.get("error"),
    }


def moves_to(end: str, endpoint: str, at: datetime, rng: random.Random) -> list[Move]:
    """The moves from ``submitted`` of an exchange that ends ``end`` (one of ``ENDS``)."""
    route = {"partner_id": endpoint, "endpoint": endpoint, "route": {"chosen": "$everything"}}
    prepared = [Move(S.VALIDATED), Move(S.CONSENT_VERIFIED, detail={"policy": "regular"})]
    routed = [*prepared, Move(S.ROUTE_SELECTED, detail=route)]
    matched = [
        *routed,
        Move(S.MEMBER_MATCHED, detail={"call": _call("member-match", endpoint, at, rng)}),
        Move(S.RETRIEVING),
    ]
    received = [
        *matched,
        Move(S.RECEIVED, detail={"call": _call("everything", endpoint, at, rng)}),
        Move(S.NORMALIZED),
    ]
    if end == "completed":
        return [*received, Move(S.COMPLETED, detail={"completeness": {"gaps": []}})]
    if end in ("partial", "conflict"):
        reason = ExchangeReason.INCOMPLETE if end == "partial" else ExchangeReason.CONFLICT
        gap = {"source": "claims", "types": ["ExplanationOfBenefit"], "code": "source-timeout"}
        detail = {"completeness": {"gaps": [gap] if end == "partial" else [], "conflicts": []}}
        stop = {"error_code": reason.value, "error_text": f"ended {end}"}
        return [
            *received,
            Move(S.PARTIAL if end == "partial" else S.CONFLICT, reason, detail, stop),
        ]
    if end in _FAILED:
        code = _FAILED[end].value
        base = routed if end == "no-match" else matched
        return [*base, Move(S.FAILED, code, None, {"error_code": code, "error_text": end})]
    if end == "no-route":
        code = ExchangeReason.NO_ROUTE.value
        return [*prepared, Move(S.FAILED, code, route, {"error_code": code, "error_text": code})]
    if end in ("dead-lettered", "cancelled"):
        code = ExchangeReason.ATTEMPTS_EXHAUSTED.value
        letter = Move(
            S.DEAD_LETTERED,
            code,
            {"step": "member-match", "attempts": 6},
            {"error_code": code, "error_text": "the member-match step gave up"},
        )
        if end == "dead-lettered":
            return [*routed, letter]
        cancelled = ExchangeReason.CANCELLED.value
        stop = {"error_code": cancelled, "error_text": "cancelled by an operator: bench"}
        return [*routed, letter, Move(S.FAILED, cancelled, {"by": "ops", "note": "bench"}, stop)]
    if end in ("revoked", "expired"):
        before = routed if end == "revoked" else prepared[:1]
        return [*before, Move(S.BLOCKED, end, {"hop": "member-match"}, {"error_code": end})]
    if end == "partner-review":
        code = ExchangeReason.PARTNER_REVIEW.value
        wait = {
            "error_code": code,
            "error_text": "a person reviews the match",
            "next_attempt_at": at + timedelta(minutes=5),
            "deadline_at": at + timedelta(hours=72),
        }
        return [*routed, Move(S.MANUAL_REVIEW, code, {"partner_review": "under review"}, wait)]
    if end == "waiting":
        return routed
    if end == "submitted":
        return []
    raise ValueError(f"no end '{end}'")


def _draw_ends(count: int, rng: random.Random) -> list[str]:
    names = [name for name, _ in ENDS]
    return rng.choices(names, weights=[share for _, share in ENDS], k=count)


def load_exchanges(
    platform: Any,
    data: IdentitySet,
    count: int,
    *,
    now: datetime,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> Fleet:
    """Register the partners and write ``count`` exchanges into ``platform``'s database."""
    from payerbridge.exchange.intake.submission import ExchangeSubmission, submit_exchange
    from payerbridge.exchange.moves import SYSTEM_ACTOR, note_attempt, record_moves
    from payerbridge.exchange.requests import request_from_document
    from payerbridge.exchange.unit import ExchangeUnit
    from payerbridge.routing.enrolment import StorePartner, store_partner
    from payerbridge.routing.model import Partner

    started = time.perf_counter()
    rng = random.Random(seed)
    partners = tuple(PartnerId(f"plan-{n}") for n in range(PARTNERS))
    for n, partner_id in enumerate(partners):
        base = f"https://plan-{n}.payer.example/fhir"
        prior = Partner(partner_id, f"Prior Plan {n}", _PARTNER_NPI, base)
        store_partner(StorePartner(prior, "bench"), platform.units.partners())
    clients = tuple(ClientId(f"new-plan-system-{n}") for n in range(CLIENTS))
    first_day = now - timedelta(days=DAYS)
    members = rng.sample(range(data.member_count), min(count, data.member_count))
    members += [rng.randrange(data.member_count) for _ in range(count - len(members))]
    # Oldest first: ids and times grow together, as they do in a running plan.
    times = sorted(first_day + timedelta(seconds=rng.uniform(0, DAYS * 86400)) for _ in members)
    ends = _draw_ends(count, rng)
    ids, member_ids, request_ids = [], [], []
    for start in range(0, count, BATCH):
        written = []
        for k in range(start, min(start + BATCH, count)):
            partner, client = partners[k % PARTNERS], clients[(k // 3) % CLIENTS]
            at, i = times[k], members[k]
            document = request_document(data, i, partner, at)
            request_id = f"bench-{uuid.UUID(int=rng.getrandbits(128))}"
            wiring = dataclasses.replace(platform.units.exchange_wiring, clock=lambda at=at: at)
            submitted = submit_exchange(
                ExchangeSubmission(
                    request_from_document(document),
                    document,
                    client_id=client,
                    idempotency_key=request_id,
                    request_id=request_id,
                ),
                ExchangeUnit(wiring),
            )
            written.append((submitted.exchange_id, ends[k], at, partner))
            ids.append(submitted.exchange_id)
            member_ids.append(document["new_coverage"]["member_id"])
            request_ids.append(request_id)
        _move(platform, written, rng, record_moves, note_attempt, SYSTEM_ACTOR)
        if (start // BATCH) % 40 == 39:
            _analyze(platform)
            if progress is not None:
                progress(f"exchanges: {start + BATCH:,} of {count:,} written")
    return Fleet(
        tuple(ids),
        tuple(member_ids),
        tuple(request_ids),
        partners,
        clients,
        first_day,
        time.perf_counter() - started,
    )


def _analyze(platform: Any) -> None:
    """On PostgreSQL, ANALYZE the tables the load writes, as autovacuum would (the bench's
    server may have it off): a plan cached while they were empty (the idempotency lookup
    by the wrong index, reading a client's every exchange) makes the load quadratic."""
    if platform.engine.dialect.name != "postgresql":
        return
    with platform.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE exchanges, exchange_transitions, audit_events")


def _move(
    platform: Any,
    written: Sequence[tuple[ExchangeId, str, datetime, PartnerId]],
    rng: random.Random,
    record_moves: Any,
    note_attempt: Any,
    actor: str,
) -> None:
    """Each exchange of ``written`` along its path in one unit of work; then, in another
    (the store writes these through SQLAlchemy Core, which a unit must not run after its
    driver statements), the attempts noted and the dead letters filed."""
    from payerbridge.exchange.moves import Advance

    uow = platform.units.exchange()
    extras = []
    with uow:
        for exchange_id, end, created, partner in written:
            at = created + timedelta(seconds=rng.uniform(1, 600))
            moves = moves_to(end, f"https://{partner}.payer.example/fhir", at, rng)
            if moves:
                record_moves(uow, Advance(exchange_id, moves, at, actor, expected=S.SUBMITTED))
            if end in ("dead-lettered", "cancelled", "waiting"):
                extras.append((exchange_id, end, at, partner))
    if not extras:
        return
    with uow:
        for exchange_id, end, at, partner in extras:
            waiting = end == "waiting"
            tried = Attempt(
                "member-match",
                2 if waiting else 6,
                at + timedelta(minutes=1) if waiting else None,
                at,
                f"partner '{partner}' answered HTTP 503",
                {"reason": "partner-unavailable", "partner_id": partner},
            )
            note_attempt(uow, exchange_id, tried, at=at)
            if not waiting:
                endpoint = f"https://{partner}.payer.example/fhir"
                uow.exchanges.file_dead_letter(_letter(exchange_id, partner, endpoint, at))


def _letter(exchange_id: ExchangeId, partner: PartnerId, endpoint: str, at: datetime) -> DeadLetter:
    return DeadLetter(
        exchange_id=exchange_id,
        step="member-match",
        reason_code=ExchangeReason.ATTEMPTS_EXHAUSTED.value,
        last_error="partner 'plan' answered HTTP 503",
        attempts=6,
        policy_snapshot={"retry": {"max_attempts": 6}},
        last_route={"partner_id": partner, "endpoint": endpoint},
        request_sha256="0" * 64,
        payload_sha256=None,
        dead_lettered_at=at,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def population_file(data: IdentitySet, path: Path) -> int:
    """Every member as a Patient line and a Coverage line (one member at a time)."""
    from payerbridge_tools.bench.identity_online import write_population

    return write_population(data, path)
