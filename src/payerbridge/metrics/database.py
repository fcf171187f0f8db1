"""The shared state as Prometheus gauges, read from the database when scraped.

A custom collector (prometheus-client calls ``collect`` at each exposition): whichever
process is scraped reads the same rows, so every process reports the same truth, and a
gauge never drifts from what the database holds (a counter kept per process would, as
soon as two processes move the same exchange). Each scrape reads anew: the readings are a
few aggregates over indexes (``store/readings.py``), and a scrape every 15 s is nothing
beside the platform's own work. When the database does not answer,
``payerbridge_database_readings_up`` is 0 and no gauge is given, rather than stale values
or a failed scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from payerbridge.exchange.calls.outbound import WAIT_REASONS, wait_reason
from payerbridge.metrics import vocabulary
from payerbridge.metrics.process import label_value
from payerbridge.metrics.readings import Snapshot

__all__ = ["DatabaseCollector"]

logger = logging.getLogger(__name__)


class DatabaseCollector:
    """The gauges, each labelled series the platform knows given even at zero
    (``metrics.vocabulary``; ``obligations``: the ids of the rule's clocks kept)."""

    def __init__(
        self, snapshot: Callable[[], Snapshot], *, obligations: Sequence[str] = ()
    ) -> None:
        self._snapshot = snapshot
        self._obligations = tuple(obligations)

    def describe(self) -> list[Metric]:
        return []  # registered without reading the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "payerbridge_database_readings_up",
            "1 when the database answered this scrape's readings, else 0",
        )
        started = time.perf_counter()
        try:
            snapshot = self._snapshot()
        except Exception as exc:  # noqa: BLE001 - a scrape must answer; the log says why
            logger.warning("metrics readings failed", extra={"error_type": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        took = GaugeMetricFamily(
            "payerbridge_database_readings_seconds", "Time the readings' queries took"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took
        yield from _families(snapshot, self._obligations)


def _gauge(name: str, text: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


Key = tuple[object, ...]  # label values as read: label_value checks each


def _labelled(
    family: GaugeMetricFamily, found: Iterable[tuple[Key, float]], known: Iterable[Key]
) -> GaugeMetricFamily:
    """``family`` with the values found (label values checked) and, at zero, each known
    label set that was not: a series that exists before its first row."""
    values: dict[tuple[str, ...], float] = {}
    for raw, value in found:
        key = tuple(label_value(part) for part in raw)
        values[key] = values.get(key, 0) + value
    for raw in known:
        values.setdefault(tuple(label_value(part) for part in raw), 0)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _families(snapshot: Snapshot, obligations: Sequence[str]) -> Iterator[Metric]:
    yield from _exchange_families(snapshot)
    yield from _review_families(snapshot)
    yield from _partner_families(snapshot)
    yield from _job_families(snapshot)
    yield from _audit_families(snapshot)
    yield from _obligation_families(snapshot, obligations)
    yield from _pull_families(snapshot)


def _pull_families(snapshot: Snapshot) -> Iterator[Metric]:
    """The standing pulls (ADR 0040); an alert fires when some are overdue: the upkeep
    sweep that starts them is not running."""
    reading = snapshot.readings.pull_schedules
    schedules = _gauge(
        "payerbridge_pull_schedules",
        "Standing pulls by kind (first, quarterly, run-off) and status (active, stopped)",
        ["kind", "status"],
    )
    found = (((row.kind, row.status), row.count) for row in reading.counts)
    yield _labelled(schedules, found, vocabulary.PULL_SCHEDULES)
    overdue = _gauge(
        "payerbridge_pull_schedules_overdue",
        "Active standing pulls due more than a day ago and not waiting on their last pull",
    )
    overdue.add_metric([], reading.overdue)
    yield overdue


def _obligation_families(snapshot: Snapshot, obligations: Sequence[str]) -> Iterator[Metric]:
    """The rule's clocks not done yet, by where they stand: an alert fires on at_risk
    before a deadline is missed, and on missed (ADR 0037); each obligation kept is
    given, at zero when none of its rows is open."""
    open_ = _gauge(
        "payerbridge_obligations_open",
        "Obligation rows not done yet, by obligation and standing (pending, at_risk, missed)",
        ["obligation", "standing"],
    )
    found = (
        ((row.obligation, standing), count)
        for row in snapshot.readings.obligations
        for standing, count in (
            ("pending", row.pending),
            ("at_risk", row.at_risk),
            ("missed", row.missed),
        )
    )
    yield _labelled(open_, found, vocabulary.obligation_series(obligations))


def _exchange_families(snapshot: Snapshot) -> Iterator[Metric]:
    readings = snapshot.readings
    exchanges = _gauge(
        "payerbridge_exchanges",
        "Exchanges by state and reason code (the database's count)",
        ["state", "reason_code"],
    )
    found = (((row.state, row.reason_code), row.count) for row in readings.exchanges)
    yield _labelled(exchanges, found, vocabulary.exchange_series())
    letters = _gauge(
        "payerbridge_dead_letters",
        "Exchanges dead-lettered and not yet replayed or given up on, by step and reason",
        ["step", "reason_code"],
    )
    found = (((letter.step, letter.reason_code), letter.count) for letter in readings.dead_letters)
    yield _labelled(letters, found, vocabulary.dead_letter_series())
    oldest = min((letter.oldest_at for letter in readings.dead_letters), default=None)
    age = _gauge("payerbridge_dead_letter_oldest_age_seconds", "Age of the oldest dead letter")
    age.add_metric([], snapshot.age_seconds(oldest))
    yield age


def _review_families(snapshot: Snapshot) -> Iterator[Metric]:
    reviews = snapshot.readings.reviews
    backlog = _gauge("payerbridge_identity_reviews_open", "Identity review cases waiting")
    backlog.add_metric([], reviews.open)
    yield backlog
    oldest = _gauge(
        "payerbridge_identity_review_oldest_age_seconds",
        "Age of the oldest open identity review case (0: none open)",
    )
    oldest.add_metric([], snapshot.review_oldest_age_seconds)
    yield oldest
    aged = _gauge(
        "payerbridge_identity_reviews_open_older_than",
        "Open identity review cases older than a bound (seconds)",
        ["seconds"],
    )
    for seconds, count in sorted(reviews.older_than.items()):
        aged.add_metric([str(seconds)], count)
    yield aged


def _partner_families(snapshot: Snapshot) -> Iterator[Metric]:
    breaker = _gauge(
        "payerbridge_partner_breaker_state",
        "1 for the state a partner's circuit breaker is in (its worst endpoint's)",
        ["partner", "state"],
    )
    maintenance = _gauge(
        "payerbridge_partner_in_maintenance",
        "1 while a partner is in a maintenance window",
        ["partner"],
    )
    suspended = _gauge(
        "payerbridge_partner_suspended", "1 while operators have suspended a partner", ["partner"]
    )
    waiting = _gauge(
        "payerbridge_exchanges_waiting",
        "Exchanges in flight waiting for their next attempt at a partner, by why: parked "
        "on its open breaker (circuit-open), in its maintenance window, under its rate "
        "limit, or after a call it did not answer (partner-unavailable)",
        ["partner", "reason"],
    )
    held: dict[tuple[str, str], int] = {}
    for row in snapshot.readings.waiting:
        key = (label_value(row.partner_id), wait_reason(row.last_error))
        held[key] = held.get(key, 0) + row.count
    names = {label_value(p.partner_id) for p in snapshot.partners} | {p for p, _ in held}
    for name in sorted(names):
        for reason in WAIT_REASONS:
            waiting.add_metric([name, reason], held.get((name, reason), 0))
    yield waiting
    for partner in snapshot.partners:
        name = label_value(partner.partner_id)
        for state in ("closed", "half_open", "open"):
            breaker.add_metric([name, state], 1 if partner.breaker == state else 0)
        maintenance.add_metric([name], 1 if partner.in_maintenance else 0)
        suspended.add_metric([name], 1 if partner.status == "suspended" else 0)
    yield breaker
    yield maintenance
    yield suspended


def _job_families(snapshot: Snapshot) -> Iterator[Metric]:
    labels = ["kind", "status"]
    jobs = _gauge("payerbridge_bulk_jobs_unfinished", "Bulk jobs accepted or running", labels)
    members = _gauge("payerbridge_bulk_job_members", "Members in unfinished bulk jobs", labels)
    done = _gauge(
        "payerbridge_bulk_job_members_done", "Members unfinished bulk jobs have done", labels
    )
    rows = snapshot.readings.bulk_jobs
    known = vocabulary.BULK_JOB_UNFINISHED
    yield _labelled(jobs, (((row.kind, row.status), row.jobs) for row in rows), known)
    yield _labelled(members, (((row.kind, row.status), row.members) for row in rows), known)
    yield _labelled(done, (((row.kind, row.status), row.done) for row in rows), known)
    onboarding = snapshot.readings.onboardings
    running = _gauge("payerbridge_onboardings_running", "Onboardings running")
    running.add_metric([], onboarding.running)
    yield running
    total = _gauge("payerbridge_onboarding_members", "Members of running onboardings")
    total.add_metric([], onboarding.members)
    yield total
    imported = _gauge(
        "payerbridge_onboarding_members_done", "Members of running onboardings whose chunk is done"
    )
    imported.add_metric([], onboarding.members_done)
    yield imported
    chunks = _gauge(
        "payerbridge_onboarding_chunks", "Chunks of running onboardings, by stage", ["stage"]
    )
    found = (((stage,), count) for stage, count in sorted(onboarding.chunks.items()))
    yield _labelled(chunks, found, ((stage,) for stage in vocabulary.ONBOARDING_STAGES))


def _audit_families(snapshot: Snapshot) -> Iterator[Metric]:
    tail = snapshot.readings.audit
    head = _gauge("payerbridge_audit_events", "Events in the audit chain (its head's seq)")
    head.add_metric([], tail.head_seq)
    yield head
    unsigned = _gauge(
        "payerbridge_audit_unsigned_events", "Audit events after the last signed checkpoint"
    )
    unsigned.add_metric([], tail.unsigned)
    yield unsigned
    age = _gauge(
        "payerbridge_audit_unsigned_age_seconds",
        "How long the oldest audit event not yet under a signed checkpoint has waited (0: none)",
    )
    age.add_metric([], snapshot.audit_unsigned_age_seconds)
    yield age
    if tail.checkpoint_at is not None:
        last = _gauge(
            "payerbridge_audit_last_checkpoint_timestamp_seconds",
            "When the last audit checkpoint was signed (Unix time)",
        )
        last.add_metric([], tail.checkpoint_at.timestamp())
        yield last
