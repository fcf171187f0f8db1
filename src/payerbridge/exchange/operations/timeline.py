"""An exchange's whole life from its audit trail, in the chain's order (pure): intake,
the consent decisions, the route, every partner call with its status and latency, the
retries, the old payer's answer about the member's identity, and where it ended.

The sources are the events about the exchange (its transitions, attempts and partner
calls), about its opt-in (captured, revoked) and the consent decisions made for it
(recorded on the member, naming the exchange; before issue 53 they named only the
opt-in, and are then taken by the opt-in and the exchange's lifetime). Each entry keeps
its event's ``seq``: the event an inclusion proof (``GET /audit/proofs``) speaks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from payerbridge.audit.model import StoredEvent
from payerbridge.audit.ports import AuditReader
from payerbridge.errors import NotFound
from payerbridge.exchange.model import ExchangeRecord, ExchangeState
from payerbridge.exchange.ports import ExchangeStore
from payerbridge.exchange.requests import request_member_id
from payerbridge.types import ClientId, ExchangeId

__all__ = ["ENDS", "ExchangeTimeline", "TimelineEntry", "audit_of_exchange", "exchange_timeline"]

S = ExchangeState
# Where an exchange ends: nothing more happens to it unless a person asks again.
ENDS = frozenset({S.COMPLETED, S.PARTIAL, S.CONFLICT, S.FAILED, S.BLOCKED})
_IDENTITY_REASONS = frozenset({"no-match", "multiple-matches", "identity-changed"})


@dataclass(frozen=True)
class TimelineEntry:
    """One audited event of the exchange. ``kind``: intake, consent, route, identity,
    partner-call, retry or state."""

    seq: int
    at: datetime
    kind: str
    action: str
    actor: str
    outcome: str
    request_id: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": _iso(self.at),
            "kind": self.kind,
            "action": self.action,
            "actor": self.actor,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ExchangeTimeline:
    """The entries in order, and what an auditor looks for first, read from them."""

    record: ExchangeRecord
    entries: tuple[TimelineEntry, ...]

    def of_kind(self, kind: str) -> list[TimelineEntry]:
        return [entry for entry in self.entries if entry.kind == kind]

    @property
    def partner_calls(self) -> list[dict[str, Any]]:
        """Every call: those that refused, went unanswered, or were taken with a move,
        each after the calls to endpoints that did not answer before it (failed over)."""
        calls = []
        for entry in self.entries:
            if not isinstance(entry.detail.get("call"), dict):
                continue
            for tried in entry.detail.get("failed_over") or ():
                calls.append({"seq": entry.seq, **tried})
            calls.append({"seq": entry.seq, **entry.detail["call"]})
        return calls

    @property
    def route(self) -> dict[str, Any] | None:
        routes = [e.detail["route"] for e in self.of_kind("route") if "route" in e.detail]
        return routes[-1] if routes else None

    @property
    def identity(self) -> dict[str, Any] | None:
        """The old payer's last answer about who the member is, as we took it."""
        answers = self.of_kind("identity")
        if not answers:
            return None
        last = answers[-1]
        matched = last.outcome == S.MEMBER_MATCHED.value
        return {
            "seq": last.seq,
            "at": _iso(last.at),
            "decided_by": "old payer",
            "outcome": "matched" if matched else (last.detail.get("reason_code") or last.outcome),
            "member_found_by": last.detail.get("member_found_by"),
            "matched_member": self.record.matched_member_ref if matched else None,
            "member_identifier": self.record.member_identifier if matched else None,
            "partner_review": last.detail.get("partner_review"),
        }

    @property
    def final(self) -> dict[str, Any] | None:
        """Where the exchange ended; None while it runs or waits (for a retry, a
        reviewer, a replay)."""
        if self.record.state not in ENDS:
            return None
        ended = [
            e
            for e in self.entries
            if e.action == "exchange.transition" and e.outcome == self.record.state.value
        ]
        last = ended[-1] if ended else None
        return {
            "state": self.record.state.value,
            "reason_code": self.record.error_code,
            "text": self.record.error_text,
            "at": _iso(last.at if last else self.record.updated_at),
            "seq": last.seq if last else None,
        }

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "exchange": record.id,
            "client_id": record.client_id,
            "old_payer": record.partner_id,
            "state": record.state.value,
            "created_at": _iso(record.created_at),
            "intake": next((e.to_json() for e in self.of_kind("intake")), None),
            "consent_decisions": [e.to_json() for e in self.of_kind("consent")],
            "route": self.route,
            "identity": self.identity,
            "partner_calls": self.partner_calls,
            "retries": [e.to_json() for e in self.of_kind("retry")],
            "final": self.final,
            "events": [e.to_json() for e in self.entries],
        }


def audit_of_exchange(
    exchange_id: ExchangeId,
    *,
    viewer: ClientId | None,
    exchanges: ExchangeStore,
    audit: AuditReader,
) -> ExchangeTimeline:
    """The timeline of an exchange ``viewer`` may see: a client its own (another's is
    NotFound, as a missing one); None, an operator or auditor: any."""
    record = exchanges.get(exchange_id)
    if viewer is not None and record.client_id != viewer:
        raise NotFound(f"exchange {exchange_id[:64]} does not exist")
    about: list[tuple[str, str]] = [("Exchange", record.id)]
    if record.consent_id is not None:
        about.append(("Consent", record.consent_id))
        member = request_member_id(record.request)
        if member is not None:
            about.append(("Patient", member))
    return exchange_timeline(record, audit.about(about))


def exchange_timeline(record: ExchangeRecord, events: Sequence[StoredEvent]) -> ExchangeTimeline:
    """The timeline of ``record`` from ``events`` (any order; the exchange's, its
    opt-in's and its member's: what is not about this exchange is left out)."""
    entries = []
    for event in sorted(events, key=lambda e: e.seq):
        detail = orjson.loads(event.detail) if event.detail else {}
        kind = _kind(record, event, detail)
        if kind is not None:
            entries.append(
                TimelineEntry(
                    seq=event.seq,
                    at=event.at,
                    kind=kind,
                    action=event.action,
                    actor=event.actor,
                    outcome=event.outcome,
                    request_id=event.request_id,
                    detail=detail,
                )
            )
    return ExchangeTimeline(record, tuple(entries))


def _kind(record: ExchangeRecord, event: StoredEvent, detail: dict[str, Any]) -> str | None:
    if event.entity_type == "Exchange" and event.entity_id == record.id:
        return _exchange_kind(event.action, detail)
    if event.action.startswith("consent.") and _is_ours(record, event, detail):
        return "intake" if event.action == "consent.recorded" else "consent"
    return None


def _exchange_kind(action: str, detail: dict[str, Any]) -> str:
    if action == "exchange.attempt":
        return "retry"
    if action == "exchange.partner-call":
        return "partner-call"
    target = detail.get("to")
    if target == S.SUBMITTED.value:
        return "intake"
    if target == S.ROUTE_SELECTED.value:
        return "route"
    if target in (S.MEMBER_MATCHED.value, S.MANUAL_REVIEW.value):
        return "identity"
    if target == S.FAILED.value and detail.get("reason_code") in _IDENTITY_REASONS:
        return "identity"
    return "state"


def _is_ours(record: ExchangeRecord, event: StoredEvent, detail: dict[str, Any]) -> bool:
    """A consent event about this exchange: its opt-in's, or a decision naming it (one
    from before decisions named their exchange: under its opt-in, during its life)."""
    if "exchange_id" in detail:
        return bool(detail["exchange_id"] == record.id)
    if event.entity_type == "Consent":
        return record.consent_id is not None and event.entity_id == record.consent_id
    return (
        record.consent_id is not None
        and detail.get("consent_id") == record.consent_id
        and _utc(record.created_at) <= _utc(event.at) <= _utc(record.updated_at)
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")
