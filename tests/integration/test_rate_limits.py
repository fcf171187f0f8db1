"""The rate limits' shared buckets in the database: two engines (as two processes) lease
from one bucket, concurrently too, the SQL lease agrees with the pure one, and a lease
does not wait for the database's writers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from payerbridge.config import load_settings
from payerbridge.errors import RateLimited
from payerbridge.security.limits import RateLimiter, RatePolicy, lease_tokens
from payerbridge.security.model import Lease, Rate
from payerbridge.store.engines import create_db_engine, migrate
from payerbridge.store.rate_limits import SqlAllowances
from payerbridge.store.tables import api_clients


@pytest.fixture
def engines(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> Iterator[tuple[Engine, Engine]]:
    env = database_env()
    settings = load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    url = settings.sqlalchemy_url
    first, second = create_db_engine(url), create_db_engine(url)
    migrate(first)
    yield first, second
    first.dispose()
    second.dispose()


def test_the_sql_lease_is_the_pure_lease(engines: tuple[Engine, Engine]) -> None:
    store = SqlAllowances(engines[0])
    rate = Rate(1, 5)
    tat = None
    for wanted, now in [(3, 10.0), (3, 10.0), (3, 10.0), (3, 11.0), (1, 11.5), (9, 30.0)]:
        expected = lease_tokens(tat, rate, min(wanted, rate.burst), now)
        got = store.lease("client-a", "POST /m", rate, wanted, now=now)
        assert (got.granted, got.tat) == pytest.approx((expected.granted, expected.tat))
        if got.granted:
            tat = got.tat
    assert store.lease("client-b", "POST /m", rate, 2, now=10.0) == Lease(2, 12.0)
    assert store.forget_idle(now=40.0) == 2  # both buckets full again by then


def test_two_engines_take_from_one_bucket(engines: tuple[Engine, Engine]) -> None:
    policy = RatePolicy(None, {"POST /m": Rate(2 / 60, 6)})
    processes = [RateLimiter(policy, SqlAllowances(engine)) for engine in engines]
    passed = 0
    for i in range(12):
        try:
            processes[i % 2].take("client-a", "POST /m", now=1000.0 + i / 10)
        except RateLimited as refused:
            assert 28 <= refused.retry_after_seconds <= 30
        else:
            passed += 1
    assert passed == 6  # the burst once, not once for each process


def test_concurrent_leases_never_pass_more_than_the_burst(
    engines: tuple[Engine, Engine],
) -> None:
    rate = Rate(0.001, 40)
    stores = [SqlAllowances(engine) for engine in engines]
    granted: list[int] = []
    lock = threading.Lock()

    def lease_many(store: SqlAllowances) -> None:
        for _ in range(15):
            lease = store.lease("client-a", "POST /m", rate, 2, now=5000.0)
            with lock:
                granted.append(lease.granted)

    threads = [threading.Thread(target=lease_many, args=(stores[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 40  # 60 leases of 2 asked for; the bucket held 40


def test_a_lease_does_not_wait_for_the_database_writers(engines: tuple[Engine, Engine]) -> None:
    """A member import holds the write lock for minutes; the requests served meanwhile
    still lease (on SQLite the buckets have a file of their own; on PostgreSQL a lease
    locks only its row)."""
    writing = threading.Event()
    done = threading.Event()

    def hold_the_write_lock() -> None:
        with engines[0].begin() as connection:
            connection.execute(api_clients.delete().where(api_clients.c.id == "none"))
            writing.set()
            done.wait(30)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert writing.wait(10)
        outcome: list[Lease] = []
        leasing = threading.Thread(
            target=lambda: outcome.append(
                SqlAllowances(engines[1]).lease("client-a", "POST /m", Rate(1, 5), 1, now=1.0)
            )
        )
        leasing.start()
        leasing.join(10)
        assert outcome == [Lease(1, 2.0)]
    finally:
        done.set()
        holder.join()
