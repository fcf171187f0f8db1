"""An audit event's partner calls as the health page judges them (pure): the call an
exchange's event carries (``detail.call``, ``exchange.calls.partner_calls``), the probe a
breaker's event carries (``detail.probe``, ``exchange.calls.circuit``) and the two calls of a
scheduled check (``detail.check``, ``oversight.partner_checks``: its capabilities, then
its token endpoint). What is not one of these, or is malformed, is no call.
``calls_since`` reads them, per partner, from the events the store gives
(``PartnerCalls``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from payerbridge.exchange.calls.partner_calls import ANSWERED, REFUSED
from payerbridge.oversight.model import CallSample
from payerbridge.oversight.partner_health import TOKEN_ANSWERED, TOKEN_REFUSED
from payerbridge.oversight.ports import PartnerCalls

__all__ = ["call_samples", "calls_since", "endpoint_samples"]


def calls_since(calls: PartnerCalls, since: datetime) -> dict[str, list[CallSample]]:
    """Per partner id, the calls and probes made to it since ``since``."""
    found: dict[str, list[CallSample]] = {}
    for event in calls.call_events_since(since):
        if event.entity_type == "Exchange":
            partner, samples = event.exchange_partner, call_samples(event.detail)
        else:
            partner, samples = event.detail.get("partner_id"), endpoint_samples(event.detail)
        if partner:
            found.setdefault(str(partner), []).extend(samples)
    return found


def call_samples(detail: dict[str, Any]) -> list[CallSample]:
    """The call of an exchange's event, if it carries one."""
    sample = _call(detail.get("call"))
    return [sample] if sample is not None else []


def endpoint_samples(detail: dict[str, Any]) -> list[CallSample]:
    """The calls of a partner endpoint's event: a check's two, or a probe."""
    found = _check(detail["check"]) if "check" in detail else [_probe(detail.get("probe"))]
    return [sample for sample in found if sample is not None]


def _call(call: Any) -> CallSample | None:
    if not isinstance(call, dict) or not isinstance(call.get("at"), str):
        return None
    outcome = call.get("outcome")
    answered = outcome in (ANSWERED, REFUSED)
    if outcome == ANSWERED:
        kind = ANSWERED
    elif outcome == REFUSED:
        kind = f"refused: {call.get('error') or call.get('status')}"
    else:
        kind = _failure(call.get("status"), call.get("error"))
    return CallSample(_instant(call["at"]), answered, int(call.get("latency_ms") or 0), kind)


def _probe(probe: Any) -> CallSample | None:
    if not isinstance(probe, dict) or not isinstance(probe.get("at"), str):
        return None
    answered = bool(probe.get("answered"))
    kind = "answered" if answered else _failure(probe.get("status"), probe.get("error"))
    latency = int(probe.get("latency_ms") or 0)
    return CallSample(_instant(probe["at"]), answered, latency, kind, probe=True)


def _check(check: Any) -> list[CallSample | None]:
    """A scheduled check as its calls: the capabilities, then the token request."""
    if not isinstance(check, dict) or not isinstance(check.get("at"), str):
        return []
    at = check["at"]
    found = [_probe(_at(check.get("capabilities"), at))]
    token = _at(check.get("token"), at)
    if token is not None:
        sample = _probe(token)
        if sample is not None:
            error = token.get("error")
            if error == "refused":
                kind = f"{TOKEN_REFUSED}: http {token.get('status')}"
            elif error is None and sample.answered:
                kind = TOKEN_ANSWERED
            else:
                kind = f"token {_failure(token.get('status'), error)}"
            found.append(replace(sample, kind=kind))
    return found


def _at(part: Any, at: str) -> dict[str, Any] | None:
    return {**part, "at": at} if isinstance(part, dict) else None


def _failure(status: Any, error: Any) -> str:
    if isinstance(status, int):
        return f"http {status}"
    return str(error or "unavailable")


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
