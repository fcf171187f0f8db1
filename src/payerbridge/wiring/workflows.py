"""DBOS in this process: the workflows bound to the platform and launched, the scheduled
upkeep's use cases, and the shutdown."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import Engine

from payerbridge import __version__
from payerbridge.audit.refusals import close_ended_windows
from payerbridge.config import Settings
from payerbridge.logging import use_trace_ids
from payerbridge.net.transport import GuardedTransport, carry_trace_context
from payerbridge.security.spent_assertions import ForgetSpentAssertions, forget_spent_assertions
from payerbridge.store.engines import create_workflow_engine
from payerbridge.store.spans import trace_statements
from payerbridge.tracing import current_ids, start_tracing, stop_tracing
from payerbridge.transactions import UnitOfWork
from payerbridge.webhooks.model import WebhookPolicy
from payerbridge.webhooks.unit import DeliveryUnit
from payerbridge.wiring.audit import audit_checkpointer
from payerbridge.wiring.platform import Platform, utcnow
from payerbridge.wiring.security import received_links
from payerbridge.wiring.workers import beat_before_launch, stop_heartbeats

if TYPE_CHECKING:
    from payerbridge.workflows.maintenance import Upkeep

__all__ = ["launch_workflows", "shutdown_workflows"]

logger = logging.getLogger(__name__)


def _dbos_system_url(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"sqlite:///{(settings.data_dir / 'workflows.db').resolve()}"
    return settings.sqlalchemy_url


def launch_workflows(platform: Platform, *, work: bool = True) -> None:
    """Start DBOS in this process. A worker (``work``) recovers its own unfinished
    workflows, runs queued exchanges and sweeps up exchanges that were recorded but
    never enqueued; an API-only process just enqueues."""
    from dbos import DBOS, DBOSConfig

    from payerbridge.workflows import (
        bulk,
        destinations,
        exchange,
        maintenance,
        onboarding,
        webhooks,
    )
    from payerbridge.workflows.queue_gate import QueueGate

    settings = platform.settings
    start_tracing(settings, version=__version__)  # ADR 0033
    use_trace_ids(current_ids)
    if settings.tracing != "off" and settings.trace_statements:
        trace_statements(platform.engine, platform.reader)
    exchange.bind_wiring(platform.units.exchange_wiring)
    bulk.bind(platform.units.bulk)
    onboarding.bind(platform.units.onboarding)
    webhooks.bind(_delivery_unit(platform))
    destinations.bind(platform.units.destinations())  # ADR 0053; None: no destination
    # Every process binds the upkeep, before a recovered tick can run: DBOS's own queue,
    # which carries the scheduled ticks, is worked by every process, API-only ones too.
    maintenance.bind(_upkeep(platform))
    # This process beats before DBOS recovers its own workflows (ADR 0049).
    start_heartbeat = beat_before_launch(platform)
    system_url = _dbos_system_url(settings)
    config: DBOSConfig = {
        "name": "payerbridge",
        "system_database_url": system_url,
        "application_version": __version__,
        "executor_id": settings.worker_id,
        "log_level": "WARNING",
        # Its NOTIFY flusher (PostgreSQL) woke every 10 ms, half a percent of a core idle,
        # for DBOS's events and streams, which nothing of ours reads (ADR 0050).
        "notification_coalesce_sec": 0.5,
    }
    engine = create_workflow_engine(system_url, max_connections=settings.database_max_connections)
    _workflow_engines.append(engine)
    config["system_database_engine"] = engine
    if platform.checkpointer is not None:  # SQLite
        platform.checkpointer.watch(system_url)
    dbos = DBOS(config=config)
    if not work:
        DBOS.listen_queues([])
    DBOS.launch()
    start_heartbeat()  # and the looks for dead workers, now that DBOS can recover
    _register_queues(settings)
    # The queue workers look in the system database only when work waits (ADR 0050).
    system_database = dbos._sys_db
    QueueGate(engine, schema=system_database.schema).install(system_database)
    platform.adapters.transactions.relay_deliveries = webhooks.enqueue_deliveries
    if work:
        maintenance.schedule(sweep_seconds=settings.upkeep_sweep_seconds)


def _delivery_unit(platform: Platform) -> DeliveryUnit:
    """The webhooks' unit with what posting takes: a client that posts only where the
    egress policy allows, the retry policy, the clock and the jitter."""
    settings, unit = platform.settings, platform.units.webhooks()
    return DeliveryUnit(
        unit.transactions,
        unit.webhooks,
        unit.targets,
        httpx.Client(
            follow_redirects=False,
            transport=GuardedTransport(unit.targets.policy),
            event_hooks={"request": [carry_trace_context]},  # ADR 0033
        ),
        WebhookPolicy(
            max_attempts=settings.webhook_max_attempts,
            timeout_seconds=settings.webhook_timeout_seconds,
        ),
        clock=utcnow,
        random=random.random,
        links=received_links(settings),
    )


def _register_queues(settings: Settings) -> None:
    """Declare the workflows' queues with their limits from ``settings`` (after launch)."""
    from payerbridge.workflows import bulk, destinations, exchange, onboarding, webhooks

    exchange.register_queue(
        exchange.QueueLimits(
            partner_concurrency=settings.partner_concurrency,
            partner_rate_per_second=settings.partner_rate_per_second,
            worker_concurrency=settings.worker_concurrency,
            polling_interval_seconds=settings.queue_polling_seconds,
        )
    )
    webhooks.register_queue()
    destinations.register_queue()
    bulk.register_queue(
        bulk.BulkQueueLimits(
            client_concurrency=settings.bulk_client_concurrency,
            worker_concurrency=settings.bulk_worker_concurrency,
            polling_interval_seconds=settings.bulk_queue_polling_seconds,
        )
    )
    onboarding.register_queue(
        partner_concurrency=settings.onboarding_partner_concurrency,
        polling_interval_seconds=settings.bulk_queue_polling_seconds,
    )


def _upkeep(platform: Platform) -> Upkeep:
    """The use cases of the scheduled upkeep workflows, on this platform."""
    from payerbridge.exchange.calls.circuit import probe_due_breakers
    from payerbridge.workflows.exchange import unstarted_exchanges
    from payerbridge.workflows.maintenance import Upkeep

    retention = timedelta(hours=platform.settings.idempotency_retention_hours)
    grace = timedelta(seconds=platform.settings.upkeep_grace_seconds)
    return Upkeep(
        sign_checkpoints=audit_checkpointer(platform),
        # Not moved for the grace: the API process has had time to enqueue it itself.
        unstarted_exchanges=lambda: unstarted_exchanges(
            platform.units.exchange(), older_than=grace
        ),
        # Overdue by the grace: a workflow that was started sleeps until it is due.
        overdue_deliveries=lambda: platform.webhooks.overdue(before=utcnow() - grace),
        purge_idempotent_answers=lambda: _in_unit(
            platform, lambda unit: platform.idempotency.purge(unit, before=unit.now - retention)
        ),
        forget_spent_assertions=lambda: forget_spent_assertions(
            ForgetSpentAssertions(), platform.units.security()
        ),
        purge_disclosure_snapshots=lambda: _in_unit(
            platform, lambda unit: platform.snapshots.purge(unit, now=unit.now)
        ),
        unstarted_bulk_jobs=lambda: platform.units.bulk().jobs.unstarted(
            updated_before=utcnow() - grace
        ),
        purge_bulk_jobs=lambda: _in_unit(
            platform, lambda unit: platform.units.bulk().jobs.purge(unit, now=unit.now)
        ),
        apply_retention=lambda: _retention_applied(platform),
        start_due_pulls=lambda: _pulls_started(platform),
        close_refusal_windows=lambda: _in_unit(
            platform, lambda unit: close_ended_windows(platform.refusals, unit)
        ),
        probe_breakers=lambda: probe_due_breakers(platform.units.exchange()),
        check_partners=lambda: _partners_checked(platform),
        overdue_destination_deliveries=lambda: _overdue_destination_deliveries(platform, grace),
        refresh_wellknown=lambda: _wellknown_refreshed(platform),
    )


def _wellknown_refreshed(platform: Platform) -> dict[str, int]:
    """Partners' davinci-configuration read again where due (ADR 0061): in the sweep at the
    top of each hour only, so a partner whose document fails is asked hourly."""
    from payerbridge.routing.discovered import RefreshDiscovered, refresh_discovered

    settings = platform.settings
    now = utcnow()
    top_of_the_hour = now.timestamp() % 3600 < settings.upkeep_sweep_seconds
    if not settings.wellknown_refresh_hours or not top_of_the_hour:
        return {}
    interval = timedelta(hours=settings.wellknown_refresh_hours)
    run = refresh_discovered(RefreshDiscovered(now, interval), platform.units.partners())
    for partner_id, why in run.failed.items():
        logger.warning(
            "a partner's davinci-configuration could not be read again",
            extra={"partner_id": partner_id, "reason": why[:300]},
        )
    changed = sum(1 for changes in run.changed.values() if changes)
    return {"read": len(run.changed), "changed": changed, "failed": len(run.failed)}


def _overdue_destination_deliveries(platform: Platform, grace: timedelta) -> list[str]:
    """Deliveries due for longer than the grace whose workflow may never have started."""
    unit = platform.units.destinations()
    return [] if unit is None else unit.deliveries.overdue(before=utcnow() - grace)


def _partners_checked(platform: Platform) -> int:
    """The quiet partners' scheduled checks; none when they are switched off."""
    from payerbridge.oversight.partner_checks import check_quiet_partners

    seconds = platform.settings.partner_check_seconds
    if not seconds:
        return 0
    checks = check_quiet_partners(
        platform.units.exchange(),
        platform.partners.list,
        platform.breakers.all,
        platform.partner_calls,
        interval=timedelta(seconds=seconds),
    )
    return len(checks)


def _pulls_started(platform: Platform) -> dict[str, int]:
    """The scheduled pulls due now started (ADR 0040), as counts."""
    from payerbridge.exchange.pulls.schedules import start_due_pulls

    run = start_due_pulls(platform.units.exchange(), utcnow())
    return {"started": len(run.started), "stopped": len(run.stopped), "waiting": run.waiting}


def _retention_applied(platform: Platform) -> dict[str, int]:
    """One pass of the retention classes (ADR 0038): how many of each went."""
    from payerbridge.compliance.lifecycle import Purge, purge

    return purge(Purge(), platform.units.compliance()).counts()


def _in_unit(platform: Platform, work: Callable[[UnitOfWork], int]) -> int:
    """An upkeep job in a unit of work of its own (what it dropped, as of ``unit.now``)."""
    with platform.transactions.begin() as unit:
        return work(unit)


_workflow_engines: list[Engine] = []


def shutdown_workflows(platform: Platform) -> None:
    from dbos import DBOS

    from payerbridge.workflows import destinations, webhooks

    platform.adapters.transactions.relay_deliveries = None
    stop_heartbeats()  # before DBOS goes: a takeover calls it
    DBOS.destroy()
    stop_tracing()  # its last spans sent
    webhooks.bind(None)
    destinations.bind(None)
    while _workflow_engines:
        _workflow_engines.pop().dispose()
