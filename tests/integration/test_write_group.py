"""Group commit on SQLite (ADR 0023), on a real database file and a real event loop:
calls that run while others wait share one commit and answer after it, each call's
writes stay all or nothing, a failed commit fails every call of its group, and writers
outside the group neither wait on it forever nor see what it has not committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from payerbridge.errors import StoreConflict
from payerbridge.store.dbapi import raw_cursor
from payerbridge.store.engines import create_db_engine
from payerbridge.store.unit_of_work import SqlTransactions
from payerbridge.store.write_group import WriteGroup, write_group_of


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
        connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        connection.execute(
            text(
                "CREATE TABLE child (parent INTEGER REFERENCES parent (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield engine
    engine.dispose()


def group_of(engine: Engine) -> WriteGroup:
    group = write_group_of(engine)
    assert group is not None
    return group


def committed(engine: Engine) -> list[int]:
    """What another connection sees: the committed rows only."""
    path = engine.url.database
    assert path is not None
    with sqlite3.connect(path) as connection:
        return [n for (n,) in connection.execute("SELECT n FROM t ORDER BY n")]


async def call(engine: Engine, *statements: str, fail: bool = False) -> None:
    """A request's store-bound call, as ``run_store_bound(..., grouped=True)`` makes it:
    its unit of work joins the group, and it returns once the group has committed."""
    group = group_of(engine)
    with group.joining() as ticket:
        try:
            with SqlTransactions(engine).begin() as unit:
                for statement in statements:
                    unit.cursor().execute(statement)
                if fail:
                    raise ValueError("the request's own failure")
        except ValueError:
            pass
    await group.settled(ticket)


def test_calls_that_run_together_share_one_commit_and_answer_after_it(engine: Engine) -> None:
    group = group_of(engine)

    async def scenario() -> None:
        first = asyncio.create_task(call(engine, "INSERT INTO t VALUES (1)"))
        second = asyncio.create_task(call(engine, "INSERT INTO t VALUES (2)"))
        await asyncio.sleep(0)  # both have written and wait for the commit
        assert committed(engine) == []
        assert not first.done() and not second.done()
        await asyncio.gather(first, second)
        assert committed(engine) == [1, 2]

    asyncio.run(scenario())
    assert group.commits == 1


def test_a_failed_call_rolls_back_its_own_writes_only(engine: Engine) -> None:
    async def scenario() -> None:
        await asyncio.gather(
            call(engine, "INSERT INTO t VALUES (1)"),
            call(engine, "INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)", fail=True),
            call(engine, "INSERT INTO t VALUES (4)"),
        )

    asyncio.run(scenario())
    assert committed(engine) == [1, 4]
    assert group_of(engine).commits == 1


def test_a_conflict_in_one_call_leaves_the_others_to_commit(engine: Engine) -> None:
    async def scenario() -> list[BaseException | None]:
        return await asyncio.gather(
            call(engine, "INSERT INTO t VALUES (1)"),
            call(engine, "INSERT INTO t VALUES (1)"),  # the key the first one took
            return_exceptions=True,
        )

    first, second = asyncio.run(scenario())
    assert first is None
    assert isinstance(second, StoreConflict)
    assert committed(engine) == [1]


def test_a_failed_commit_fails_every_call_of_the_group(engine: Engine) -> None:
    async def scenario() -> list[BaseException | None]:
        return await asyncio.gather(
            call(engine, "INSERT INTO t VALUES (1)"),
            call(engine, "INSERT INTO child VALUES (99)"),  # no parent 99: refused at COMMIT
            return_exceptions=True,
        )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, StoreConflict) for outcome in outcomes), outcomes
    assert committed(engine) == []
    assert group_of(engine).commits == 0
    asyncio.run(call(engine, "INSERT INTO t VALUES (2)"))  # the lock was let go
    assert committed(engine) == [2]


def test_reads_in_a_call_see_what_its_group_wrote(engine: Engine) -> None:
    seen: list[int] = []

    async def reader() -> None:
        group = group_of(engine)
        with group.joining() as ticket, raw_cursor(engine) as cursor:
            seen.extend(n for (n,) in cursor.execute("SELECT n FROM t"))
        await group.settled(ticket)

    async def scenario() -> None:
        writer = asyncio.create_task(call(engine, "INSERT INTO t VALUES (1)"))
        await asyncio.sleep(0)
        assert committed(engine) == []
        await reader()
        assert committed(engine) == [1]  # it read what the group wrote: it waited for it
        await writer

    asyncio.run(scenario())
    assert seen == [1]


def test_a_call_that_writes_in_two_groups_waits_for_both(engine: Engine) -> None:
    """A SQLAlchemy transaction in the middle of a call commits the call's first group;
    the call's next unit opens a second one, which it must wait for too."""
    group = group_of(engine)
    transactions = SqlTransactions(engine)

    async def scenario() -> None:
        with group.joining() as ticket:
            with transactions.begin() as unit:
                unit.cursor().execute("INSERT INTO t VALUES (1)")
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (2)"))
            with transactions.begin() as unit:
                unit.cursor().execute("INSERT INTO t VALUES (3)")
        assert committed(engine) == [1, 2]
        await group.settled(ticket)
        assert committed(engine) == [1, 2, 3]

    asyncio.run(scenario())
    assert group.commits == 2


def test_a_writer_outside_the_group_commits_it_first(engine: Engine) -> None:
    """On the loop's own thread: it would otherwise wait on the lock the group holds."""

    async def scenario() -> None:
        writer = asyncio.create_task(call(engine, "INSERT INTO t VALUES (1)"))
        await asyncio.sleep(0)
        with SqlTransactions(engine).begin() as unit:  # not in a call of the group
            unit.cursor().execute("INSERT INTO t VALUES (2)")
        assert committed(engine) == [1, 2]
        await writer

    asyncio.run(scenario())
    assert group_of(engine).commits == 1


def test_a_writer_on_another_thread_waits_for_the_group_to_commit(engine: Engine) -> None:
    seen: list[int] = []

    def other_thread() -> None:
        with engine.begin() as connection:  # takes the write lock: waits for the group
            seen.extend(connection.execute(text("SELECT n FROM t")).scalars())
            connection.execute(text("INSERT INTO t VALUES (2)"))

    async def scenario() -> None:
        writer = asyncio.create_task(call(engine, "INSERT INTO t VALUES (1)"))
        await asyncio.sleep(0)
        thread = threading.Thread(target=other_thread)
        thread.start()
        await writer
        await asyncio.to_thread(thread.join)

    asyncio.run(scenario())
    assert seen == [1]  # its transaction began after the group's commit
    assert committed(engine) == [1, 2]
