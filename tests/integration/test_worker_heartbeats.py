"""The workers' heartbeats in the database (ADR 0049): a beat is an upsert, a dead
worker is claimed once, and a claim in progress holds the row against a second survivor
(skipped) and against the worker's own next beat (which waits for it)."""

from __future__ import annotations

import threading
from datetime import timedelta

from payerbridge.bootstrap import Platform
from payerbridge.store.workers import SqlWorkerHeartbeats
from payerbridge.types import WorkerId

W1, W2 = WorkerId("w1"), WorkerId("w2")


def test_a_dead_worker_is_claimed_once_and_beats_again_afresh(platform: Platform) -> None:
    beats = SqlWorkerHeartbeats(platform.reader)
    with platform.transactions.begin() as unit:
        beats.beat(unit, W1, version="1")
        first = unit.now
    with platform.transactions.begin() as unit:
        beats.beat(unit, W2, version="1")
        beats.beat(unit, W2, version="2")  # an upsert: the latest beat and version
    assert {(b.worker_id, b.version) for b in beats.all()} == {(W1, "1"), (W2, "2")}
    with platform.transactions.begin() as unit:  # alive as of the cutoff: not claimed
        assert not beats.claim(unit, W1, stale_before=first)
    later = first + timedelta(seconds=1)
    with platform.transactions.begin() as unit:
        assert beats.claim(unit, W1, stale_before=later)
    with platform.transactions.begin() as unit:
        assert not beats.claim(unit, W1, stale_before=later)  # taken already
    assert [b.worker_id for b in beats.all()] == [W2]
    with platform.transactions.begin() as unit:
        beats.beat(unit, W1, version="1")  # back with the same id
    assert {b.worker_id for b in beats.all()} == {W1, W2}


def test_a_claim_in_progress_is_skipped_by_another_and_waited_for_by_the_worker(
    platform: Platform,
) -> None:
    beats = SqlWorkerHeartbeats(platform.reader)
    with platform.transactions.begin() as unit:
        beats.beat(unit, W1, version="1")
        # Stale from just after that beat: the worker's next beat is not.
        cutoff = unit.now + timedelta(milliseconds=1)
    claimed, recovering = threading.Event(), threading.Event()
    second: list[bool] = []
    beat_done = threading.Event()

    def other_survivor() -> None:
        claimed.wait(10)
        with platform.transactions.begin() as unit:
            second.append(beats.claim(unit, W1, stale_before=cutoff))

    def worker_back() -> None:
        claimed.wait(10)
        with platform.transactions.begin() as unit:
            beats.beat(unit, W1, version="1")
        beat_done.set()

    threads = [threading.Thread(target=other_survivor), threading.Thread(target=worker_back)]
    for thread in threads:
        thread.start()
    with platform.transactions.begin() as unit:
        assert beats.claim(unit, W1, stale_before=cutoff)
        claimed.set()
        # The workflows are handed back here; the worker's beat must not land meanwhile.
        recovering.wait(0.5)
        assert not beat_done.is_set()
    for thread in threads:
        thread.join(10)
    assert second == [False]
    assert beat_done.is_set()
    assert [b.worker_id for b in beats.all()] == [W1]  # its new beat, after the claim
