"""The data hop of an exchange: the member's record read at the old payer (``$everything``,
or its searches where the route chose them) and kept under our ids with Provenance.

The payload, the resources and received → normalized → its end commit together. The
end is ``completed``, ``partial`` (the answer lacked something: ``NormalizedBundle.gaps``)
or ``conflict`` (sources disagree; both kept). The resources are kept under the member's
one Patient (``one_patient``, ADR 0054) and reconciled with what we hold for the same
client's member from the same old payer (``reconcile``): the same source identity
updates the same row, and what a complete answer no longer sends is removed. An exchange
found in ``received`` (its payload kept apart by an earlier build, or a restart between
the two) is normalized from the payload kept.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from payerbridge.errors import ConsentDenied, PartnerError, PartnerRejected
from payerbridge.exchange.calls.outbound import (
    StepClock,
    after_failed_call,
    call_partner,
    idempotency_key,
    step_clock,
)
from payerbridge.exchange.model import ExchangeRecord, ExchangeState, Move
from payerbridge.exchange.moves import (
    Blocking,
    StepResult,
    StepRun,
    advance,
    advance_in,
    arrival,
    block,
    give_up,
    partner_code,
)
from payerbridge.exchange.ports import RecordRead, Retrieved
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.received.increments import changed_since
from payerbridge.exchange.received.normalize import (
    NormalizedBundle,
    Receipt,
    normalize_everything_bundle,
)
from payerbridge.exchange.received.reconcile import Holder, end_reason, end_state, stale_refs
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.steps.consent_checks import check_consent, refused
from payerbridge.exchange.steps.one_patient import OnePatient, under_one_patient
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner
from payerbridge.routing.route import SEARCH, read_data_path
from payerbridge.timestamps import utc_iso

__all__ = ["holder_of", "normalize_received", "retrieve_record"]

logger = logging.getLogger(__name__)
S = ExchangeState
STEP = "everything"


@dataclass(frozen=True)
class _Reading:
    """The member's record as the old payer gave it, the way it was read (its
    ``$everything`` or its searches) and the calls that read it, as the move's detail
    keeps them."""

    retrieved: Retrieved
    way: str
    calls: dict[str, Any]


@dataclass(frozen=True)
class _Answer:
    """An old payer's answer normalized for one exchange, with what was read of it before
    the commit that stores it: whom it is held for, under which Patient and where it
    disagrees with the member's other sources (``one``), what changed after ``since``."""

    record: ExchangeRecord
    holder: Holder
    one: OnePatient
    changed: dict[str, int]


def retrieve_record(uow: ExchangeUnit, run: StepRun, *, checked: bool = False) -> StepResult:
    """member_matched → retrieving → received → normalized → completed: read the record
    and keep it; ``checked`` when the match has just committed ``retrieving`` with this
    hop's consent decision."""
    record, partner = run.record, run.partner
    exchange_id = record.id
    if record.matched_member_ref is None:
        return give_up(
            uow,
            exchange_id,
            ExchangeReason.NO_MATCHED_MEMBER,
            "the exchange reached retrieval without the member the old payer matched; "
            "replay it to match again",
        )
    if not checked:
        check = check_consent(uow, record, partner, STEP)
        if check.consent is None:
            return refused(uow, exchange_id, check)
        if record.state is S.MEMBER_MATCHED:
            moves = [arrival(S.RETRIEVING)]
            advance(uow, exchange_id, moves, event=check.event, expected=record.state)
        else:  # a retried call
            uow.audit.record(check.event)
    clock = step_clock(uow, run, STEP)
    read = _read(uow, record, clock)
    if isinstance(read, StepResult):
        return read
    return _keep_received(uow, record, partner, read)


def _read(uow: ExchangeUnit, record: ExchangeRecord, clock: StepClock) -> StepResult | _Reading:
    """The member's record and how it was read, or where the partner's answer (or its
    silence) left the exchange."""
    exchange_id = record.id
    member_ref = record.matched_member_ref
    assert member_ref is not None
    key = idempotency_key(record, STEP)
    way, types = read_data_path(record.data_path)
    # The last attempt keeps the pages read before one the partner cannot give: the
    # exchange ends partial, naming the page, rather than with nothing.
    last = clock.is_last_call(uow.retry_policy, uow.clock())

    def read(at: Partner, timeout: float) -> Retrieved:
        if way == SEARCH:  # the partner offers no $everything: its searches, by the member
            asked = RecordRead(member_ref, key, timeout, keep_partial=last)
            return uow.client.search_record(at, asked, types)
        asked = RecordRead(member_ref, key, timeout, keep_partial=last, since=record.since)
        return uow.client.everything(at, asked)

    try:
        outcome = call_partner(uow, clock, read)
    except ConsentDenied as exc:  # the old payer refused on consent grounds
        return block(uow, exchange_id, Blocking(exc.reason, exc.text, {"by": "partner"}))
    except PartnerError as exc:
        return give_up(uow, exchange_id, partner_code(exc), exc.text, {"status": exc.status})
    if outcome.value is None:
        return after_failed_call(outcome, S.RETRIEVING)
    return _Reading(outcome.value, way, outcome.calls_detail())


def _keep_received(
    uow: ExchangeUnit, record: ExchangeRecord, partner: Partner, reading: _Reading
) -> StepResult:
    """The payload, its resources under our ids and → its end, in one commit."""
    exchange_id = record.id
    retrieved = reading.retrieved
    body = retrieved.content
    digest = hashlib.sha256(body).hexdigest()
    at = uow.clock()
    received = Move(
        S.RECEIVED,
        detail={
            "bytes": len(body),
            "sha256": digest,
            "pages": list(retrieved.page_sizes),
            "read_by": reading.way,
            **reading.calls,
        },
    )
    # Normalized at once, in memory: the payload, the resources and received → normalized →
    # its end are one commit. A run cut off before it calls the partner again, under the
    # same idempotency key, as it would if cut off before a commit of the payload alone.
    normalized = _normalized(uow, record, partner, body)
    ended = S.FAILED
    # Read before the unit begins: a unit's thread gets no second connection (ADR 0008).
    answer = (
        None if isinstance(normalized, str) else _answer(uow, record, partner, normalized, body)
    )
    with uow:
        uow.exchanges.save_payload(exchange_id, body.decode(), digest, at)
        if answer is None:
            advance_in(uow, exchange_id, [arrival(S.RECEIVED, detail=received.detail)])
        else:
            ended = _store_normalized(uow, answer, S.RETRIEVING, before=[received])
    if isinstance(normalized, str):
        return give_up(uow, exchange_id, ExchangeReason.INVALID_PAYLOAD, normalized)
    return StepResult(ended, done=True)


def _changed(record: ExchangeRecord, payload: bytes | str) -> dict[str, int]:
    """What an incremental exchange's answer held that changed after its ``since``."""
    if record.since is None:
        return {}
    try:
        return changed_since(orjson.loads(payload), record.since)
    except orjson.JSONDecodeError:
        return {}


def _nothing_new(record: ExchangeRecord, changed: dict[str, int]) -> tuple[str, str] | None:
    """``nothing-new`` for an incremental exchange whose answer changed nothing."""
    if record.since is None or changed:
        return None
    return (
        ExchangeReason.NOTHING_NEW,
        f"the old payer has nothing new since {utc_iso(record.since)}",
    )


def holder_of(record: ExchangeRecord, partner: Partner) -> Holder:
    """Whom the exchange's data is held for, and from which old payer."""
    member = request_from_document(record.request).member_id
    return Holder(record.client_id, member, partner.npi)


def _normalized(
    uow: ExchangeUnit, record: ExchangeRecord, partner: Partner, payload: bytes | str
) -> NormalizedBundle | str:
    """The received Bundle under our ids with Provenance, or why it cannot be stored."""
    try:
        receipt = Receipt(
            holder_of(record, partner), partner.organization, uow.us, uow.clock(), record.id
        )
        return normalize_everything_bundle(orjson.loads(payload), receipt)
    except (orjson.JSONDecodeError, UnicodeDecodeError, PartnerRejected) as exc:
        return exc.text if isinstance(exc, PartnerRejected) else "the Bundle is not valid JSON"


def normalize_received(uow: ExchangeUnit, record: ExchangeRecord, partner: Partner) -> StepResult:
    """received → normalized → its end, for an exchange whose payload was kept apart;
    normalized → completed for one stored before a restart (by a build that committed
    the two apart)."""
    exchange_id = record.id
    if record.state is S.NORMALIZED:  # stored before a restart; only the last move is missing
        advance(uow, exchange_id, [arrival(S.COMPLETED)], expected=S.NORMALIZED)
        return StepResult(S.COMPLETED, done=True)
    payload = uow.exchanges.payload(exchange_id)  # read and opened once
    normalized = _normalized(uow, record, partner, payload)
    if isinstance(normalized, str):
        return give_up(uow, exchange_id, ExchangeReason.INVALID_PAYLOAD, normalized)
    answer = _answer(uow, record, partner, normalized, payload)
    with uow:
        ended = _store_normalized(uow, answer, S.RECEIVED)
    return StepResult(ended, done=True)


def _answer(
    uow: ExchangeUnit,
    record: ExchangeRecord,
    partner: Partner,
    normalized: NormalizedBundle,
    payload: bytes | str,
) -> _Answer:
    """The normalized answer with what is read of it before its commit (a unit's thread
    gets no second connection, ADR 0008)."""
    holder = holder_of(record, partner)
    one = under_one_patient(uow, record, partner, holder, normalized)
    return _Answer(record, holder, one, _changed(record, payload))


def _store_normalized(
    uow: ExchangeUnit, answer: _Answer, expected: ExchangeState, before: Sequence[Move] = ()
) -> ExchangeState:
    """The resources reconciled with what is held, and ``before`` → normalized → its end
    from ``expected``, in ``uow``'s transaction; returns the end."""
    record, holder, one, changed = answer.record, answer.holder, answer.one, answer.changed
    normalized = one.normalized
    exchange_id = record.id
    at = uow.clock()
    gaps = normalized.gaps
    conflicts = [*normalized.conflicts, *one.conflicts]
    held = uow.received.held_refs(one.held_for)
    # An answer asked _since holds only what changed: what it leaves out still stands.
    stale = stale_refs(held, normalized.refs, complete=not gaps and record.since is None)
    removed = [ref for ref in stale if ref != one.kept_always]
    ended = end_state(gaps, conflicts)
    reason = end_reason(gaps, conflicts) or _nothing_new(record, changed)
    completeness = {
        "gaps": [gap.to_json() for gap in gaps],
        "conflicts": [conflict.to_json() for conflict in conflicts],
        "member_patient": one.choice.to_json(),
        "differences": [difference.to_json() for difference in one.differences],
        "updated": len(set(held) & normalized.refs - {one.kept_always}),  # received ones
        "removed": removed[:200],
        "removed_count": len(removed),
        **({"since": utc_iso(record.since), "changed": changed} if record.since else {}),
    }
    counts = {
        "resources": dict(normalized.counts),
        "skipped": dict(normalized.skipped),
        "unresolved_references": normalized.unresolved_references,
    }
    kept = {
        "imported_patient_id": one.choice.patient_id,
        "resource_count": sum(normalized.counts.values()),
        "member_key": holder.member_key,
    }
    end = Move(
        ended,
        reason[0] if reason else None,
        {"completeness": completeness},
        {"error_code": reason[0], "error_text": reason[1]} if reason else None,
    )
    advance_in(
        uow,
        exchange_id,
        [*before, arrival(S.NORMALIZED, detail=counts, updates=kept), end],
        expected=expected,
    )
    uow.received.remove(removed)
    uow.writer.write(uow, normalized.resources, source=f"exchange:{exchange_id}", at=at)
    logger.info(
        "exchange data stored",
        extra={
            "exchange_id": exchange_id,
            "state": ended.value,
            "resources": sum(normalized.counts.values()),
            "gaps": len(gaps),
            "conflicts": len(conflicts),
            "removed": len(removed),
        },
    )
    return ended
