"""Group commit of the event loop's SQLite write transactions (ADR 0023).

On embedded SQLite a hot request runs inline on the event loop (``run_store_bound``), one
at a time, and each paid for a transaction of its own: the write lock, ``BEGIN
IMMEDIATE``, and a commit that appends every page it changed to the WAL, the tables'
last pages and the audit chain's included, once per request. Here the requests that run
while the previous ones wait for their commit share one transaction instead:

- the edge opens a ``Ticket`` for a call (``joining``); a unit of work begun in that call
  joins the engine's open transaction (opening it if there is none) as a ``SAVEPOINT``,
  and its end releases the savepoint, or rolls back to it: each request's writes are
  still all or nothing, whatever its neighbours do;
- the call's reads use the same connection, so they see what the requests before it in
  the group wrote, as they would have once those committed;
- the call does not answer until the group's transaction has committed
  (``settled``): a committer task commits once the loop has gone round twice without a
  new request joining (the requests that were waiting on the network have run), or the
  group is full, and tells every ticket; a failed commit fails every request of the
  group, none of which has answered;
- any other writer of this thread (a unit outside a ticket, SQLAlchemy's own
  transactions) commits the open group first, where it takes the file's write lock:
  the loop never waits on a lock it holds itself. Other threads wait for the lock as
  they would for any writer, and the loop commits the group within a few turns.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import Engine

from payerbridge.store.driver_errors import translated_errors
from payerbridge.store.engines import SpareConnections, WriterConnection, spares_of

__all__ = ["Ticket", "WriteGroup", "current_group", "write_group_of"]

# A group never holds more requests than this: past it, the next turn of the loop commits.
_MOST_MEMBERS = 64
# Turns of the loop without a new member before the group commits: a request whose
# bytes arrived while the last one ran is read in one turn and runs in the next.
_QUIET_TURNS = 2
_SAVEPOINT = "unit"


@dataclass(eq=False)
class Ticket:
    """One call's part in the groups it wrote in or read from: how many have not ended
    yet, and the first failure among them."""

    pending: int = 0
    error: BaseException | None = None
    enlisted_in: int = -1  # the generation of the last group it was enlisted in
    waiter: asyncio.Future[None] | None = field(default=None, repr=False)

    def finish(self, error: BaseException | None) -> None:
        self.pending -= 1
        if self.error is None:
            self.error = error
        if not self.pending and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


_joining: ContextVar[tuple[WriteGroup, Ticket] | None] = ContextVar(
    "payerbridge_write_group", default=None
)


class WriteGroup:
    """The open group transaction of one SQLite writing engine (see the module docstring)."""

    def __init__(self, spares: SpareConnections) -> None:
        self._spares = spares
        self._connection: WriterConnection | None = None
        # The one thread whose calls join: the event loop's, the first to join. Calls on
        # any other (a second loop, as a test client runs) write as they would without.
        self._owner: int | None = None
        self._tickets: list[Ticket] = []
        self._joins = 0  # units that joined, ever: the committer watches it move
        self._generation = 0  # groups ended, ever: a ticket is enlisted once in each
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0  # group transactions committed (for tests and reports)

    # -- the edge --------------------------------------------------------------------------

    @contextmanager
    def joining(self) -> Iterator[Ticket]:
        """Units of work begun in the block (on this thread) join the group; the ticket
        to wait on (``settled``) before answering."""
        ticket = Ticket()
        token = _joining.set((self, ticket))
        try:
            yield ticket
        finally:
            _joining.reset(token)

    async def settled(self, ticket: Ticket) -> None:
        """Return once every group ``ticket`` was in has ended; raise if one failed."""
        if ticket.pending:
            ticket.waiter = asyncio.get_running_loop().create_future()
            await ticket.waiter  # cancelled with the call: the group commits regardless
        if ticket.error is not None:
            raise ticket.error

    # -- the units of work -----------------------------------------------------------------

    @property
    def connection(self) -> WriterConnection | None:
        """The open group's connection, on the group's own thread; else None."""
        if self._owner != threading.get_ident():
            return None
        return self._connection

    def join(self, ticket: Ticket) -> WriterConnection:
        """Begin a unit in the group: its connection, inside a new savepoint."""
        connection = self.connection
        if connection is None:
            connection = self._open()
        with translated_errors():
            connection.execute(f"SAVEPOINT {_SAVEPOINT}")
        self.enlist(ticket)
        self._joins += 1
        if self._committer is None:
            # In a context of its own: not the call's, which would name this group.
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_when_quiet(), context=contextvars.Context()
            )
        return connection

    def enlist(self, ticket: Ticket) -> None:
        """``ticket`` waits for the open group's commit."""
        if ticket.enlisted_in != self._generation:
            ticket.enlisted_in = self._generation
            ticket.pending += 1
            self._tickets.append(ticket)

    def release(self) -> None:
        """The unit's writes stay, to commit with the group's."""
        assert self._connection is not None
        with translated_errors():
            self._connection.execute(f"RELEASE {_SAVEPOINT}")

    def roll_back(self) -> None:
        """Undo the unit's writes only; the group's others stay."""
        if self._connection is None:
            return
        try:
            with translated_errors():
                self._connection.execute(f"ROLLBACK TO {_SAVEPOINT}")
                self._connection.execute(f"RELEASE {_SAVEPOINT}")
        except BaseException as error:  # the transaction itself is lost: so is the group
            self._end(error)
            raise

    def flush(self) -> None:
        """Commit the open group now, if this thread holds one (a writer outside it is
        about to take the write lock)."""
        if self.connection is not None:
            self._end(None)

    # -- committing ------------------------------------------------------------------------

    def _owns_thread(self) -> bool:
        here = threading.get_ident()
        if self._owner is None:
            with _owning:
                if self._owner is None:
                    self._owner = here
        return self._owner == here

    def _open(self) -> WriterConnection:
        connection = self._spares.take()
        if not isinstance(connection, WriterConnection):
            self._spares.give_back(connection, failed=False)
            raise RuntimeError("a write group needs the writing engine's connections")
        connection.take_lock()
        try:
            with translated_errors():
                connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            connection.drop_lock()
            self._spares.give_back(connection, failed=True)
            raise
        connection.before_lock_taken(self.flush)
        self._connection = connection
        return connection

    async def _commit_when_quiet(self) -> None:
        try:
            while self.connection is not None and len(self._tickets) < _MOST_MEMBERS:
                seen = self._joins
                for _ in range(_QUIET_TURNS):
                    await asyncio.sleep(0)
                if self._joins == seen:
                    break
            self.flush()
        finally:
            self._committer = None

    def _end(self, failure: BaseException | None) -> None:
        """Commit the group (or, after ``failure``, roll it back) and tell its tickets."""
        connection, tickets = self._connection, self._tickets
        assert connection is not None
        self._connection, self._tickets = None, []
        self._generation += 1
        connection.before_lock_taken(None)
        error = failure
        if error is None:
            try:
                with translated_errors():
                    connection.commit()  # lets go of the write lock, however it ends
            except BaseException as exc:  # noqa: BLE001 - told to every ticket below
                error = exc
            else:
                self.commits += 1
        if error is not None:
            try:
                connection.rollback()
            except Exception:  # noqa: BLE001 - the connection is closed below either way
                connection.drop_lock()
        self._spares.give_back(connection, failed=error is not None)
        for ticket in tickets:
            ticket.finish(error)


_groups: weakref.WeakKeyDictionary[Engine, WriteGroup] = weakref.WeakKeyDictionary()
_owning = threading.Lock()


def write_group_of(engine: Engine) -> WriteGroup | None:
    """The write group of a SQLite writing engine (None on PostgreSQL)."""
    group = _groups.get(engine)
    if group is None:
        spares = spares_of(engine)
        if spares is None:
            return None
        group = _groups[engine] = WriteGroup(spares)
    return group


def current_group(engine: Engine) -> tuple[WriteGroup, Ticket] | None:
    """The group a unit of ``engine`` begun here joins, with the call's ticket: only
    inside ``joining``, on the thread that entered it."""
    joining = _joining.get()
    if joining is None or _groups.get(engine) is not joining[0]:
        return None
    return joining if joining[0]._owns_thread() else None


def group_connection(engine: Engine) -> tuple[WriterConnection, WriteGroup] | None:
    """The open group's connection, and the group, when this call joins ``engine``'s
    group: the call's reads see what the group wrote, and so the call waits for its
    commit too (it must not answer with what may yet be rolled back). Else None."""
    joining = current_group(engine)
    if joining is None:
        return None
    group, ticket = joining
    connection = group.connection
    if connection is None:
        return None
    group.enlist(ticket)
    return connection, group
