"""The counters and histograms of what happens in this process: HTTP requests, partner
calls, and the business events its committed units recorded (``metrics.events``).

Each process counts its own; Prometheus sums them across processes (one scrape target
per process), or, in prometheus-client's multiprocess mode (``use_shared_directory``),
each writes its values to a file of its own in one directory and any process's
exposition reads them all (one target per host).

On the hot path (every request, every committed unit) recording is a dict hit and an
increment: each labelled metric keeps its children by their label values
(``Labelled``), instead of ``labels()`` taking the metric's lock and checking the values
each time. Label values are checked once, when first seen, and each metric holds at most
``LABEL_SETS`` of them: past that, new ones count under ``other``, so that nothing a
partner or a caller sends can grow the exposition without bound. Label values are codes
and templates, never identifiers: a route's template, not its path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, values

from payerbridge.metrics import vocabulary

__all__ = [
    "LABEL_SETS",
    "Labelled",
    "PartnerCall",
    "ProcessMetrics",
    "process_metrics",
    "record_http",
    "record_partner_call",
    "record_worker_recovery",
    "shared_directory",
    "use_shared_directory",
]

LABEL_SETS = 200  # distinct label sets one metric keeps; the rest count under "other"
OTHER = "other"
# What a label value may look like: codes, route templates, partner ids. Anything else
# (a space, a quote, an @, 81 characters) is not a code, and counts as "invalid".
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:/{}$*-]{1,80}$")
# Latency buckets (seconds): a $member-match takes milliseconds, a partner's $everything
# seconds.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PARTNER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_REVIEW_BUCKETS = (60.0, 600.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0)

# The _created series double every counter's series for a value nobody alerts on.
disable_created_metrics()  # type: ignore[no-untyped-call]


def label_value(value: object) -> str:
    """``value`` as a label value: itself when it looks like a code, else ``invalid``;
    None and the empty string are ``none``."""
    if value is None or value == "":
        return "none"
    text = str(value)
    return text if _LABEL_VALUE.match(text) else "invalid"


class Labelled:
    """One labelled metric and its children, kept by the raw label values."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[object, ...], Any] = {}
        self._known = 0  # children made by ``zero``: the platform's own values
        self._other: Any = None

    def child(self, *raw: object) -> Any:
        found = self._children.get(raw)
        if found is None:
            found = self._new_child(raw)
        return found

    def zero(self, *raw: object) -> None:
        """Export the series of these label values at zero before anything is counted in
        it (``metrics.vocabulary``): a value the platform knows, outside the cap."""
        if raw not in self._children:
            self._children[raw] = self._metric.labels(*(label_value(value) for value in raw))
            self._known += 1

    def _new_child(self, raw: tuple[object, ...]) -> Any:
        if len(self._children) - self._known >= LABEL_SETS:
            if self._other is None:
                self._other = self._metric.labels(*(OTHER for _ in raw))
            return self._other
        child = self._metric.labels(*(label_value(value) for value in raw))
        self._children[raw] = child
        return child


class ProcessMetrics:
    """This process's metrics, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._edges()
        self._decisions()
        self._work()
        self._zeros()

    def _counter(self, name: str, text: str, labels: tuple[str, ...]) -> Labelled:
        return Labelled(Counter(name, text, labels, registry=self.registry))

    def _histogram(
        self, name: str, text: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Labelled:
        return Labelled(Histogram(name, text, labels, registry=self.registry, buckets=buckets))

    def _edges(self) -> None:
        """What comes in (HTTP) and goes out (partner calls)."""
        self.http_requests = self._counter(
            "payerbridge_http_requests",
            "HTTP requests answered, by route template and status",
            ("method", "route", "status"),
        )
        self.http_duration = self._histogram(
            "payerbridge_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ("method", "route"),
            _HTTP_BUCKETS,
        )
        self.partner_calls = self._counter(
            "payerbridge_partner_requests",
            "Calls to partner payers, by partner, operation, HTTP status (none: no answer) "
            "and outcome (success, rejected, throttled, server-error, or why no answer "
            "came: unreachable, timeout, transport-error, too-large, refused)",
            ("partner", "method", "operation", "status", "outcome"),
        )
        self.partner_duration = self._histogram(
            "payerbridge_partner_request_duration_seconds",
            "Time a partner payer took to answer, by partner and operation",
            ("partner", "operation"),
            _PARTNER_BUCKETS,
        )

    def _decisions(self) -> None:
        """Identity, review, consent and disclosure decisions."""
        self.match_decisions = self._counter(
            "payerbridge_member_match_decisions",
            "$member-match decisions, by match policy, outcome, reason and what decided "
            "(via: engine, or review for a request answered after its review case was decided)",
            ("policy", "outcome", "reason", "via"),
        )
        self.reviews_decided = self._counter(
            "payerbridge_identity_reviews_decided",
            "Identity review cases decided, by outcome",
            ("outcome",),
        )
        self.review_resolution = self._histogram(
            "payerbridge_identity_review_resolution_seconds",
            "Time from a review case's opening to its decision",
            ("outcome",),
            _REVIEW_BUCKETS,
        )
        self.consent_decisions = self._counter(
            "payerbridge_consent_decisions",
            "Consent decisions, by hop, outcome (permit or deny) and deny reason",
            ("hop", "outcome", "reason"),
        )
        self.disclosures = self._counter(
            "payerbridge_disclosures",
            "Disclosures of a member's record ($everything, searches, a member of a bulk "
            "export), by operation and policy",
            ("operation", "policy"),
        )
        self.withheld = self._counter(
            "payerbridge_disclosure_withheld_resources",
            "Resources a consent withheld from disclosures, by operation and policy",
            ("operation", "policy"),
        )

    def _work(self) -> None:
        """Exchanges, breakers, bulk jobs and onboardings moving."""
        self.exchange_transitions = self._counter(
            "payerbridge_exchange_transitions",
            "Exchanges moved into a state, by state and reason code",
            ("state", "reason_code"),
        )
        self.exchange_retries = self._counter(
            "payerbridge_exchange_retries",
            "Partner calls of exchange steps to be tried again, by step and reason",
            ("step", "reason"),
        )
        self.breaker_changes = self._counter(
            "payerbridge_partner_breaker_transitions",
            "Circuit breaker status changes, by partner and new status",
            ("partner", "state"),
        )
        self.bulk_jobs = self._counter(
            "payerbridge_bulk_jobs",
            "Bulk jobs accepted and ended, by kind and outcome",
            ("kind", "outcome"),
        )
        self.destination_deliveries = self._counter(
            "payerbridge_destination_deliveries",
            "Deliveries of received records to the plan's FHIR server, by destination and "
            "outcome (waiting: an attempt to be tried again; delivered, refused, failed)",
            ("destination", "outcome"),
        )
        self.onboardings = self._counter(
            "payerbridge_onboardings",
            "Plan-year onboardings started and ended, by outcome",
            ("outcome",),
        )
        # Unlabelled: exported at zero from the start (ADR 0049).
        self.worker_recoveries = Counter(
            "payerbridge_worker_recoveries",
            "Dead workers taken over by this process (their workflows handed back)",
            registry=self.registry,
        )
        self.recovered_workflows = Counter(
            "payerbridge_worker_recovered_workflows",
            "Workflows of dead workers this process handed back to their queues",
            registry=self.registry,
        )

    def _zeros(self) -> None:
        """Every series of a label set the platform knows, at zero from the start: the
        first event of each is a change that rate() and increase() see."""
        for labels in vocabulary.match_decision_series():
            self.match_decisions.zero(*labels)
        for outcome in vocabulary.REVIEW_OUTCOMES:
            self.reviews_decided.zero(outcome)
            self.review_resolution.zero(outcome)
        for state, reason in vocabulary.exchange_series():
            self.exchange_transitions.zero(state, reason)
        for step in vocabulary.EXCHANGE_STEPS:
            for reason in vocabulary.WAIT_REASONS:
                self.exchange_retries.zero(step, reason)
        for kind, outcome in vocabulary.BULK_JOB_OUTCOMES:
            self.bulk_jobs.zero(kind, outcome)
        for outcome in vocabulary.ONBOARDING_OUTCOMES:
            self.onboardings.zero(outcome)


_current = ProcessMetrics()


def process_metrics() -> ProcessMetrics:
    return _current


def record_http(method: str, route: str, status: int | None, seconds: float) -> None:
    """One HTTP request answered (``status`` None: none was sent), by its route template."""
    metrics = _current
    metrics.http_requests.child(method, route, status).inc()
    metrics.http_duration.child(method, route).observe(seconds)


@dataclass(frozen=True)
class PartnerCall:
    """One call to a partner as its metrics label it: the partner, the method and
    operation, its HTTP status (``none`` when no answer came) and its outcome, the
    status's class or why no answer came (``partners.calls``)."""

    partner: str
    method: str
    operation: str
    status: str
    outcome: str


def record_partner_call(call: PartnerCall, seconds: float) -> None:
    """One call to a partner, and how long it took."""
    metrics = _current
    labels = (call.partner, call.method, call.operation, call.status, call.outcome)
    metrics.partner_calls.child(*labels).inc()
    metrics.partner_duration.child(call.partner, call.operation).observe(seconds)


def record_worker_recovery(workflows: int) -> None:
    """A dead worker taken over by this process, ``workflows`` of its handed back."""
    metrics = _current
    metrics.worker_recoveries.inc()
    metrics.recovered_workflows.inc(workflows)


def shared_directory() -> Path | None:
    """The directory this process's metrics are written to (multiprocess mode), if any."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(directory) if directory else None


def use_shared_directory(directory: Path) -> None:
    """Write this process's metrics to ``directory``, where every process of the host
    writes its own file and any exposition sums them (prometheus-client's multiprocess
    mode). Call it before the process records anything: what it recorded before starts
    again from zero. The variable is set for the processes this one starts, too."""
    global _current
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    # The library picks its value class from the variable when it is first imported;
    # this process may have imported it before (a forked server): pick it again, as
    # prometheus-client's own tests do, and build the metrics on it.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _current = ProcessMetrics()
