"""The exposition in process: the listener serves this process's counters and the shared
state without a token; a port it cannot bind is a clear error naming the setting; readings
that fail leave the scrape answering, with ``payerbridge_database_readings_up`` 0; every
state and reason the platform knows is a gauge series, at zero when no row has it."""

from __future__ import annotations

import gc
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payerbridge.errors import InvalidInput, StoreUnavailable
from payerbridge.metrics import PlatformMetrics, record_http, serve_metrics
from payerbridge.metrics.readings import (
    AuditTail,
    DatabaseReadings,
    ExchangeCount,
    OnboardingProgress,
    ReviewBacklog,
)
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Readings:
    """A database that holds two completed exchanges, or does not answer."""

    def __init__(self) -> None:
        self.down = False

    def read(self, *, now: datetime, review_ages: Sequence[timedelta]) -> DatabaseReadings:
        if self.down:
            raise StoreUnavailable("the database did not answer")
        return DatabaseReadings(
            exchanges=(ExchangeCount("completed", None, 2),),
            reviews=ReviewBacklog(1, now - timedelta(hours=2), {3600: 1}),
            dead_letters=(),
            breakers=(),
            bulk_jobs=(),
            onboardings=OnboardingProgress(0, 0, 0),
            audit=AuditTail(10, 8, now, now - timedelta(seconds=30)),
        )


def metrics(source: Readings, obligations: Sequence[str] = ()) -> PlatformMetrics:
    partners = [Partner(PartnerId("old"), "Old", "1245319599", "https://old.example/fhir")]
    return PlatformMetrics(source, lambda: partners, lambda: NOW, obligations=obligations)


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_listener_serves_the_counters_and_the_shared_state_without_a_token() -> None:
    record_http("GET", "/exchanges/{exchange_id}", 200, 0.002)
    port = free_port()
    server = serve_metrics(metrics(Readings()), host="127.0.0.1", port=port)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200
    seen = values(answer.text)
    assert seen[("payerbridge_exchanges", (("reason_code", "none"), ("state", "completed")))] == 2
    assert seen[("payerbridge_identity_review_oldest_age_seconds", ())] == 7200
    assert seen[("payerbridge_audit_unsigned_events", ())] == 2
    assert seen[("payerbridge_audit_unsigned_age_seconds", ())] == 30
    breaker = (("partner", "old"), ("state", "closed"))
    assert seen[("payerbridge_partner_breaker_state", breaker)] == 1
    route = (("method", "GET"), ("route", "/exchanges/{exchange_id}"), ("status", "200"))
    assert seen[("payerbridge_http_requests_total", route)] >= 1


# prometheus-client's server leaves the socket it failed to bind to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_port_it_cannot_bind_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidInput) as refused:
            serve_metrics(metrics(Readings()), host="127.0.0.1", port=port)
    assert refused.value.issues[0].expression == "PAYERBRIDGE_METRICS_PORT"
    assert f"127.0.0.1:{port}" in refused.value.text
    gc.collect()  # here, where its warning is expected, not in a later test


def test_readings_that_fail_leave_the_scrape_answering() -> None:
    source = Readings()
    source.down = True
    body, media_type = metrics(source).render(None)
    seen = values(body.decode())
    assert media_type.startswith("text/plain")
    assert seen[("payerbridge_database_readings_up", ())] == 0
    assert not [name for name, _ in seen if name == "payerbridge_exchanges"]


def test_every_known_state_and_reason_is_a_series_at_zero_when_no_row_has_it() -> None:
    kept = ("answer-within-one-business-day", "run-off")
    body, _ = metrics(Readings(), obligations=kept).render(None)
    seen = values(body.decode())

    def gauge(name: str, **labels: str) -> float | None:
        return seen.get((name, tuple(sorted(labels.items()))))

    # The rows there are, as they are; beside them, every other state at zero.
    assert gauge("payerbridge_exchanges", state="completed", reason_code="none") == 2
    assert gauge("payerbridge_exchanges", state="dead_lettered", reason_code="none") == 0
    dead = {"state": "dead_lettered", "reason_code": "attempts-exhausted"}
    assert gauge("payerbridge_exchanges", **dead) == 0
    assert gauge("payerbridge_exchanges", state="blocked", reason_code="revoked") == 0
    # No dead letter at all: each step and reason there, at zero.
    for step in ("member-match", "everything"):
        for reason in ("attempts-exhausted", "budget-exhausted"):
            assert gauge("payerbridge_dead_letters", step=step, reason_code=reason) == 0
    # No obligation open: each kept, in each standing, at zero.
    for obligation in kept:
        for standing in ("pending", "at_risk", "missed"):
            assert (
                gauge("payerbridge_obligations_open", obligation=obligation, standing=standing) == 0
            )
    assert gauge("payerbridge_pull_schedules", kind="run-off", status="active") == 0
    assert gauge("payerbridge_bulk_jobs_unfinished", kind="group-export", status="running") == 0
    assert gauge("payerbridge_onboarding_chunks", stage="await-export") == 0
