"""Plan-year onboarding as a DBOS workflow per run, on a queue partitioned by old payer.

The workflow calls ``onboarding.service.proceed`` until the run ends; each call moves one
chunk one stage on and commits it (the chunk's row is its checkpoint, as an exchange's
is: ADR 0004), so a run recovered on any worker resumes from the last commit. Waits for
the old payer's jobs, and for an old payer that does not answer, are ``DBOS.sleep``s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dbos import DBOS, Queue, SetEnqueueOptions, SetWorkflowID

from payerbridge.errors import (
    PartnerAuthRejected,
    PartnerUnavailable,
    PayerBridgeError,
    StoreUnavailable,
)
from payerbridge.onboarding.model import FailOnboarding
from payerbridge.onboarding.service import fail_onboarding, proceed
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.tracing import continued, current_traceparent, span
from payerbridge.types import OnboardingId, PartnerId
from payerbridge.workflows import destinations
from payerbridge.workflows.steps import OnFailure, Progress, run_until_done

__all__ = ["ONBOARDING_QUEUE", "bind", "enqueue_onboarding", "onboarding_workflow"]

logger = logging.getLogger(__name__)
ONBOARDING_QUEUE = "onboardings"

_units: Callable[[], OnboardingUnit] | None = None
_queues: dict[str, Queue] = {}


def bind(units: Callable[[], OnboardingUnit]) -> None:
    """``units``: a fresh unit of work of the room each call (``platform.units.onboarding``)."""
    global _units
    _units = units


def _unit() -> OnboardingUnit:
    if _units is None:
        raise RuntimeError("workflows.onboarding.bind was not called")
    return _units()


@DBOS.step()
def fail_onboarding_step(onboarding_id: OnboardingId, error: str) -> None:
    fail_onboarding(FailOnboarding(onboarding_id, error), _unit())


@DBOS.workflow()
def onboarding_workflow(onboarding_id: OnboardingId, traceparent: str | None = None) -> str:
    """Run the onboarding to its end; ``traceparent``: the trace of the request or command
    that started it, continued by every step (ADR 0033)."""
    uow = _unit()  # this run's: a unit is not shared between threads

    def step() -> Progress:
        with (
            continued(traceparent),
            span("onboarding.proceed", {"payerbridge.onboarding_id": onboarding_id}),
        ):
            progress = proceed(onboarding_id, uow)
        return Progress(ended="done" if progress.done else None, resume_at=progress.retry_at)

    def before_retry(exc: BaseException) -> None:
        if isinstance(exc, PartnerAuthRejected):  # its token may have been revoked
            _refresh(uow, onboarding_id)

    def end(exc: BaseException) -> str:
        if isinstance(exc, PayerBridgeError):  # the old payer refused, or answered badly
            return _failed(onboarding_id, exc.text)
        logger.error(
            "onboarding step failed",
            exc_info=exc,
            extra={"onboarding_id": onboarding_id, "error_type": type(exc).__name__},
        )
        return _failed(onboarding_id, f"internal error ({type(exc).__name__})")

    failing = OnFailure(
        # an old payer (or our database) that does not answer, or a token to renew
        transient=(PartnerUnavailable, PartnerAuthRejected, StoreUnavailable),
        end=end,
        before_retry=before_retry,
    )
    ended = run_until_done(
        step, failing, clock=uow.clock, log_context={"onboarding_id": onboarding_id}
    )
    if destinations.is_bound():
        # What it stored goes on to the plan's FHIR server (ADR 0053): recorded after
        # every operation of the run, so runs in flight keep their history.
        destinations.deliver_onboarding(onboarding_id, traceparent)
    return ended


def _refresh(uow: OnboardingUnit, onboarding_id: OnboardingId) -> None:
    onboarding = uow.onboardings.get(onboarding_id)
    partner = uow.partners.get(onboarding.partner_id) if onboarding else None
    if partner is not None:
        uow.bulk.refresh_credentials(partner)


def _failed(onboarding_id: OnboardingId, error: str) -> str:
    fail_onboarding_step(onboarding_id, error)
    return "failed"


def enqueue_onboarding(onboarding_id: OnboardingId, partner_id: PartnerId) -> None:
    """Enqueue the run's workflow (its id is the run's: enqueueing again attaches to it)."""
    queue = _queues.get(ONBOARDING_QUEUE)
    if queue is None:
        raise RuntimeError(f"the {ONBOARDING_QUEUE} queue is not registered")
    with (
        SetWorkflowID(f"onboarding:{onboarding_id}"),
        SetEnqueueOptions(queue_partition_key=partner_id),
    ):
        queue.enqueue(onboarding_workflow, onboarding_id, current_traceparent())


def register_queue(*, partner_concurrency: int, polling_interval_seconds: float) -> None:
    _queues[ONBOARDING_QUEUE] = DBOS.register_queue(
        ONBOARDING_QUEUE,
        worker_concurrency=max(2, partner_concurrency),
        partition_concurrency=partner_concurrency,
        polling_interval_sec=polling_interval_seconds,
        on_conflict="always_update",
    )
