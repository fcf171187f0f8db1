"""Which workers are dead (pure), and their takeover by a survivor, on fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.oversight.model import Heartbeat
from payerbridge.oversight.workers import (
    TakeOverDeadWorkers,
    WorkersUnit,
    dead_workers,
    is_stale,
    take_over_dead_workers,
)
from payerbridge.transactions import UnitOfWork
from payerbridge.types import WorkerId
from tests.fakes import InMemoryAuditLog, InMemoryTransactions

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
STALE = timedelta(seconds=45)
ME = WorkerId("w1")
VERSION = "1.0"

ids = st.sampled_from([WorkerId(f"w{n}") for n in range(1, 7)])
beats = st.lists(
    st.builds(
        Heartbeat,
        worker_id=ids,
        version=st.sampled_from([VERSION, "0.9"]),
        beat_at=st.integers(0, 300).map(lambda s: NOW - timedelta(seconds=s)),
    ),
    max_size=20,
)
watching = st.none() | st.integers(0, 300).map(lambda s: NOW - timedelta(seconds=s))


def judged(heartbeats: list[Heartbeat], since: datetime | None = NOW - STALE) -> list[WorkerId]:
    judge = Heartbeat(ME, VERSION, NOW)
    return dead_workers(heartbeats, judge=judge, stale_after=STALE, watching_since=since)


@given(beats, watching)
def test_never_a_live_worker_nor_the_judge_and_each_dead_one_once(
    heartbeats: list[Heartbeat], since: datetime | None
) -> None:
    dead = judged(heartbeats, since)
    assert ME not in dead
    assert len(dead) == len(set(dead))
    for worker in dead:
        theirs = [b for b in heartbeats if b.worker_id == worker]
        latest = max(b.beat_at for b in theirs)
        assert is_stale(latest, now=NOW, stale_after=STALE)  # its latest beat, not any
        assert any(b.version == VERSION and b.beat_at == latest for b in theirs)


@given(beats)
def test_every_stale_worker_of_the_version_but_the_judge_is_found(
    heartbeats: list[Heartbeat],
) -> None:
    latest: dict[WorkerId, Heartbeat] = {}
    for beat in heartbeats:
        if beat.worker_id not in latest or beat.beat_at > latest[beat.worker_id].beat_at:
            latest[beat.worker_id] = beat
    expected = {
        worker
        for worker, beat in latest.items()
        if worker != ME and beat.version == VERSION and NOW - beat.beat_at > STALE
    }
    assert set(judged(heartbeats)) == expected


@given(beats, st.integers(0, 44))
def test_a_judge_whose_own_beats_lately_failed_judges_nobody(
    heartbeats: list[Heartbeat], seconds: int
) -> None:
    assert judged(heartbeats, None) == []
    assert judged(heartbeats, NOW - timedelta(seconds=seconds)) == []  # back for < STALE


def test_a_beat_exactly_a_staleness_old_is_still_alive() -> None:
    assert judged([Heartbeat(WorkerId("w2"), VERSION, NOW - STALE)]) == []
    old = Heartbeat(WorkerId("w2"), VERSION, NOW - STALE - timedelta(microseconds=1))
    assert judged([old]) == [WorkerId("w2")]


class FakeHeartbeats:
    def __init__(self, *beats: Heartbeat) -> None:
        self.rows = {beat.worker_id: beat for beat in beats}

    def beat(self, unit: UnitOfWork, worker_id: WorkerId, *, version: str) -> None:
        self.rows[worker_id] = Heartbeat(worker_id, version, unit.now)

    def all(self) -> list[Heartbeat]:
        return list(self.rows.values())

    def claim(self, unit: UnitOfWork, worker_id: WorkerId, *, stale_before: datetime) -> bool:
        beat = self.rows.get(worker_id)
        if beat is None or beat.beat_at >= stale_before:
            return False
        del self.rows[worker_id]
        return True


class FakeRecovery:
    def __init__(self, pending: dict[WorkerId, list[str]]) -> None:
        self.pending = pending
        self.asked: list[WorkerId] = []

    def recover(self, worker_id: WorkerId) -> list[str]:
        self.asked.append(worker_id)
        return self.pending.pop(worker_id, [])


def test_two_survivors_take_a_dead_worker_over_once_between_them() -> None:
    dead = Heartbeat(WorkerId("w3"), VERSION, NOW - timedelta(minutes=5))
    heartbeats = FakeHeartbeats(dead, Heartbeat(WorkerId("w2"), VERSION, NOW))
    transactions = InMemoryTransactions(InMemoryAuditLog(), heartbeats, clock=lambda: NOW)
    recovery = FakeRecovery({WorkerId("w3"): ["ex-1", "ex-2"]})
    taken = [
        take_over_dead_workers(
            TakeOverDeadWorkers(Heartbeat(judge, VERSION, NOW), STALE, NOW - timedelta(hours=1)),
            WorkersUnit(transactions, heartbeats, recovery),
        )
        for judge in (WorkerId("w1"), WorkerId("w2"))
    ]
    assert [[(t.worker_id, t.by, t.workflow_ids) for t in run] for run in taken] == [
        [("w3", "w1", ("ex-1", "ex-2"))],
        [],
    ]
    assert recovery.asked == ["w3"]
    assert set(heartbeats.rows) == {"w2"}


def test_a_worker_that_beat_again_before_the_claim_is_left_alone() -> None:
    class BeatsFirst(FakeHeartbeats):
        def all(self) -> list[Heartbeat]:  # read stale; the worker beats before the claim
            seen = super().all()
            self.rows[WorkerId("w3")] = Heartbeat(WorkerId("w3"), VERSION, NOW)
            return seen

    heartbeats = BeatsFirst(Heartbeat(WorkerId("w3"), VERSION, NOW - timedelta(minutes=5)))
    transactions = InMemoryTransactions(InMemoryAuditLog(), heartbeats, clock=lambda: NOW)
    recovery = FakeRecovery({WorkerId("w3"): ["ex-1"]})
    taken = take_over_dead_workers(
        TakeOverDeadWorkers(Heartbeat(ME, VERSION, NOW), STALE, NOW - timedelta(hours=1)),
        WorkersUnit(transactions, heartbeats, recovery),
    )
    assert taken == []
    assert recovery.asked == []


def test_a_recovery_that_fails_gives_the_claim_back() -> None:
    class Failing(FakeRecovery):
        def recover(self, worker_id: WorkerId) -> list[str]:
            raise RuntimeError("the system database did not answer")

    dead = Heartbeat(WorkerId("w3"), VERSION, NOW - timedelta(minutes=5))
    heartbeats = FakeHeartbeats(dead)
    transactions = InMemoryTransactions(InMemoryAuditLog(), heartbeats, clock=lambda: NOW)
    with pytest.raises(RuntimeError):
        take_over_dead_workers(
            TakeOverDeadWorkers(Heartbeat(ME, VERSION, NOW), STALE, NOW - timedelta(hours=1)),
            WorkersUnit(transactions, heartbeats, Failing({})),
        )
    assert heartbeats.rows == {WorkerId("w3"): dead}  # the next tick tries again
