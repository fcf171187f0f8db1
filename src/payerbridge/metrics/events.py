"""The business events of this process, counted from the audit events its units commit.

Every decision and move the platform makes is recorded as an audit event in the unit that
makes it (ADR 0007), and ``SqlTransactions`` hands each committed unit's events here
(``observe_events``): so the counters count what was committed, exactly once, and a
rolled-back unit counts nothing. Only codes are read from an event (outcomes, reasons,
states, policies), never its entity id or the member and request ids of its detail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from payerbridge.audit.model import AuditEvent
from payerbridge.metrics.process import ProcessMetrics, process_metrics
from payerbridge.metrics.vocabulary import REVIEWED_ANSWERS, VIA_ENGINE, VIA_REVIEW

__all__ = ["observe_events"]

logger = logging.getLogger(__name__)

_BULK_OUTCOMES = frozenset({"accepted", "completed", "failed", "cancelled"})


def _policy_name(version: object) -> str | None:
    """A match policy's name (``single_exchange``, ``bulk``) from its version
    (``<name>-<digest>``): the same series across threshold changes."""
    if not isinstance(version, str):
        return None
    return version.rsplit("-", 1)[0]


def _match_decision(metrics: ProcessMetrics, event: AuditEvent) -> None:
    detail = event.detail
    policy = _policy_name(detail.get("policy_version"))
    reason = detail.get("reason")
    metrics.match_decisions.child(policy, event.outcome, reason, VIA_ENGINE).inc()


def _member_match_answer(metrics: ProcessMetrics, event: AuditEvent) -> None:
    """A request answered after a reviewer decided the case the engine opened for it: a
    decision of its own, the reviewer's (``via="review"``): the match a reviewer
    accepted counts as a match, which the engine's ``review`` did not. Other answers
    repeat the engine's decision, counted from its own event."""
    detail = event.detail
    answered = REVIEWED_ANSWERS.get(str(detail.get("review")))
    if detail.get("via") != VIA_REVIEW or answered is None:
        return
    outcome, reason = answered
    if (event.outcome == "match") != (outcome == "match"):
        return  # accepted, and the member is no longer on file: no decision of its own
    metrics.match_decisions.child(detail.get("policy"), outcome, reason, VIA_REVIEW).inc()


def _review_decided(metrics: ProcessMetrics, event: AuditEvent) -> None:
    metrics.reviews_decided.child(event.outcome).inc()
    waited = event.detail.get("waited_seconds")
    if isinstance(waited, int | float) and waited >= 0:
        metrics.review_resolution.child(event.outcome).observe(waited)


def _consent_decision(metrics: ProcessMetrics, event: AuditEvent) -> None:
    detail = event.detail
    reason = detail.get("reason") if event.outcome == "deny" else None
    metrics.consent_decisions.child(detail.get("hop"), event.outcome, reason).inc()


def _exchange_transition(metrics: ProcessMetrics, event: AuditEvent) -> None:
    metrics.exchange_transitions.child(event.outcome, event.detail.get("reason_code")).inc()


def _exchange_attempt(metrics: ProcessMetrics, event: AuditEvent) -> None:
    if event.outcome == "retry":
        detail = event.detail
        metrics.exchange_retries.child(detail.get("step"), detail.get("reason")).inc()


def _disclosure(metrics: ProcessMetrics, event: AuditEvent) -> None:
    detail = event.detail
    withheld = detail.get("withheld")
    if withheld is None:  # a next page: the disclosure was counted at its first
        return
    key = (event.action, detail.get("policy"))
    metrics.disclosures.child(*key).inc()
    if isinstance(withheld, int) and withheld > 0:
        metrics.withheld.child(*key).inc(withheld)


def _exported(metrics: ProcessMetrics, event: AuditEvent) -> None:
    """A completed export's disclosures: each member released is one, by its policy."""
    released, withheld = event.detail.get("released"), event.detail.get("withheld")
    if not isinstance(released, dict) or not isinstance(withheld, dict):
        return  # a bulk match, or an export completed before these were recorded
    for policy, members in released.items():
        if isinstance(members, int) and members > 0:
            metrics.disclosures.child(event.action, policy).inc(members)
        count = withheld.get(policy)
        if isinstance(count, int) and count > 0:
            metrics.withheld.child(event.action, policy).inc(count)


def _breaker(metrics: ProcessMetrics, event: AuditEvent) -> None:
    metrics.breaker_changes.child(event.detail.get("partner_id"), event.outcome).inc()


def _onboarding(metrics: ProcessMetrics, event: AuditEvent) -> None:
    metrics.onboardings.child(event.outcome).inc()


def _delivery(metrics: ProcessMetrics, event: AuditEvent) -> None:
    metrics.destination_deliveries.child(event.detail.get("destination"), event.outcome).inc()


_OBSERVERS: dict[str, Callable[[ProcessMetrics, AuditEvent], None]] = {
    "identity.decision": _match_decision,
    "member-match": _member_match_answer,
    "identity.review": _review_decided,
    "consent.decision": _consent_decision,
    "exchange.transition": _exchange_transition,
    "exchange.attempt": _exchange_attempt,
    "patient.everything": _disclosure,
    "patient.search": _disclosure,
    "breaker.opened": _breaker,
    "breaker.half-opened": _breaker,
    "breaker.closed": _breaker,
    "onboarding": _onboarding,
    "exchange.delivery": _delivery,
    "onboarding.delivery": _delivery,
}


def observe_events(events: Sequence[AuditEvent]) -> None:
    """Count what a committed unit's audit events say happened. Never raises: the unit
    has committed, and a metric is not worth failing it for."""
    metrics = process_metrics()
    try:
        for event in events:
            observer = _OBSERVERS.get(event.action)
            if observer is not None:
                observer(metrics, event)
            elif event.entity_type == "BulkJob" and event.outcome in _BULK_OUTCOMES:
                metrics.bulk_jobs.child(event.action, event.outcome).inc()
                if event.outcome == "completed":
                    _exported(metrics, event)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("audit events not counted")
