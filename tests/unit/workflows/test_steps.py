"""The one runner of resumable steps: failures waited out with the one policy, the rest
ending the run, and the same durable sleeps whatever the clock says on a replay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import PartnerUnavailable, StoreUnavailable
from payerbridge.workflows.steps import (
    TRANSIENT_WAITS,
    OnFailure,
    Progress,
    TransientWaits,
    run_until_done,
)

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


class Script:
    """Steps that raise or return what they are given, in turn; the sleeps they cause."""

    def __init__(self, *outcomes: BaseException | Progress) -> None:
        self._outcomes: Iterator[BaseException | Progress] = iter(outcomes)
        self.sleeps: list[float] = []
        self.ended_by: BaseException | None = None

    def step(self) -> Progress:
        outcome = next(self._outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def end(self, exc: BaseException) -> str:
        self.ended_by = exc
        return "failed"

    def run(self, *, clock: datetime = NOW, policy: TransientWaits = TRANSIENT_WAITS) -> str:
        return run_until_done(
            self.step,
            OnFailure(transient=(StoreUnavailable,), end=self.end, policy=policy),
            clock=lambda: clock,
            log_context={"test": "steps"},
            sleep=self.sleeps.append,
        )


def test_transient_failures_are_waited_out_doubling_and_a_success_resets_the_count() -> None:
    blink = StoreUnavailable("the database did not answer")
    script = Script(blink, blink, Progress(), blink, Progress(ended="completed"))
    assert script.run() == "completed"
    assert script.sleeps == [0.5, 1.0, 0.5]
    assert script.ended_by is None


def test_too_many_failures_in_a_row_end_the_run_with_the_last() -> None:
    policy = TransientWaits(attempts=3, first_wait=1.0, longest_wait=1.5)
    failures = [StoreUnavailable(f"blink {n}") for n in range(3)]
    script = Script(*failures)
    assert script.run(policy=policy) == "failed"
    assert script.ended_by is failures[-1]
    assert script.sleeps == [1.0, 1.5]  # doubled, then held at the ceiling


def test_any_other_error_ends_the_run_at_once() -> None:
    refused = PartnerUnavailable("not ours to wait out here")
    script = Script(refused)
    assert script.run() == "failed"
    assert script.ended_by is refused and script.sleeps == []


def test_a_wait_asked_for_by_the_failure_is_kept_within_the_ceiling() -> None:
    policy = TransientWaits(attempts=5, first_wait=1.0, longest_wait=60.0)
    assert policy.wait_after(1, asked=30.0) == 30.0
    assert policy.wait_after(1, asked=600.0) == 60.0
    assert policy.wait_after(3) == 4.0


@given(st.integers(min_value=-120, max_value=120))
def test_a_due_step_is_slept_for_even_when_the_clock_has_passed_it(seconds: int) -> None:
    """A recovered run replays the first run's sleeps in order: whether one is taken may
    not depend on the clock."""
    due = NOW + timedelta(seconds=seconds)
    script = Script(Progress(resume_at=due), Progress(ended="done"))
    assert script.run() == "done"
    assert script.sleeps == [max(float(seconds), 0.0)]


def test_a_step_due_at_once_sleeps_not_at_all() -> None:
    script = Script(Progress(), Progress(), Progress(ended="done"))
    assert script.run() == "done"
    assert script.sleeps == []


@pytest.mark.parametrize("attempts", [1, 2, 8])
def test_the_policy_counts_failures_not_sleeps(attempts: int) -> None:
    policy = TransientWaits(attempts=attempts, first_wait=0.1, longest_wait=1.0)
    script = Script(*[StoreUnavailable("blink")] * attempts)
    assert script.run(policy=policy) == "failed"
    assert len(script.sleeps) == attempts - 1
