"""The one runner of resumable steps, and how long it waits out a transient failure
(``TransientWaits``: not the partner calls' ``exchange.calls.retry.RetryPolicy``), for every
durable workflow.

An exchange, a bulk job and an onboarding run are each a row that is its own checkpoint
(ADR 0004): the workflow calls the room's ``proceed`` again and again, each call moving
the row on and committing, until the work ends. What differs is only which errors are
worth waiting out (a database that blinked; for onboarding, an old payer that did not
answer) and how a run that cannot go on is ended visibly. Everything else, the count of
failures in a row, the waits between them and the durable sleeps, is here, once.

The durable sleeps are history DBOS replays: a recovered run must record the same
operations in the same order (ADR 0004), so a change to this loop's shape is a change
to every workflow's history; the lengths of the waits are not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from dbos import DBOS

__all__ = ["TRANSIENT_WAITS", "OnFailure", "Progress", "TransientWaits", "run_until_done"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransientWaits:
    """How many failures in a row a run waits out, and how long it waits after each:
    ``first_wait`` seconds, doubled each time up to ``longest_wait``, or what the failure
    asked for (a partner's Retry-After) within the same ceiling."""

    attempts: int
    first_wait: float
    longest_wait: float

    def wait_after(self, failures: int, asked: float | None = None) -> float:
        wait = asked if asked else self.first_wait * 2 ** (failures - 1)
        return min(float(wait), self.longest_wait)


# A database restart or failover takes seconds to a minute; an old payer that does not
# answer may take longer. Eight failures in a row wait about four minutes in all.
TRANSIENT_WAITS = TransientWaits(attempts=8, first_wait=0.5, longest_wait=120.0)


@dataclass(frozen=True)
class Progress:
    """What one step did: ``ended`` (the run's final word) when the work is over; else
    ``resume_at``, when the next step is due (None: at once)."""

    ended: str | None = None
    resume_at: datetime | None = None


@dataclass(frozen=True)
class OnFailure:
    """How a run meets a failing step: the errors it waits out (``transient``: up to
    ``policy.attempts`` failures in a row, ``before_retry`` first, e.g. to renew a revoked
    token), and how it ends visibly otherwise (``end(error)``, the run's final word)."""

    transient: tuple[type[BaseException], ...]
    end: Callable[[BaseException], str]
    before_retry: Callable[[BaseException], None] | None = None
    policy: TransientWaits = TRANSIENT_WAITS


def run_until_done(
    step: Callable[[], Progress],
    failing: OnFailure,
    *,
    clock: Callable[[], datetime],
    log_context: Mapping[str, str],
    sleep: Callable[[float], None] = DBOS.sleep,
) -> str:
    """Call ``step`` until it says the work ended, and return its final word.

    A transient error is waited out up to the policy's failures in a row; past them, or
    on any other error, ``failing.end(error)`` ends the run visibly and its word is
    returned. Waits are durable sleeps, so a run cut off while waiting resumes where it
    was."""
    transient, end = failing.transient, failing.end
    before_retry, policy = failing.before_retry, failing.policy
    failures = 0
    while True:
        try:
            progress = step()
        except transient as exc:
            failures += 1
            if failures >= policy.attempts:
                return end(exc)
            if before_retry is not None:
                before_retry(exc)
            logger.warning(
                "a workflow step will be tried again",
                extra={**log_context, "error_type": type(exc).__name__, "failures": failures},
            )
            sleep(policy.wait_after(failures, getattr(exc, "retry_after", None)))
            continue
        except Exception as exc:  # noqa: BLE001 - every failure must end the run visibly
            return end(exc)
        failures = 0
        if progress.ended is not None:
            return progress.ended
        if progress.resume_at is not None:
            # Slept even when already due: a recovered run replays the same sleeps (one
            # already over returns at once), whatever the clock says now.
            sleep(max((progress.resume_at - clock()).total_seconds(), 0.0))
