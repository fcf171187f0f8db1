"""Refused calls in the audit chain, counted (issue 67, ADR 0045).

A ``$member-match`` or ``$bulk-member-match`` refused (422 no match, 429 over the card
guard or the client's rate, a wrong-card guess) is counted, not chained one by one: a
guesser must not be able to flood the chain, and must still show in it. Each refusal
adds one to the counter of its client, operation, reason and *window* (fixed windows of
``length`` from the epoch), in the refusal's own transaction. A window that has ended
becomes one audit event (``refusals``: the count and the window, no demographics and no
identifiers), written by the next refusal's transaction or the upkeep's tick, whichever
finds it ended first, and the counter is marked closed in that same transaction. A
refusal whose window was closed while it ran counts in the next window still open:
every refusal is in exactly one event.

The store keeps the counters (``RefusalCounts``; a refusal and a window are the
room's model); this module decides windows, reasons
and events (pure), and holds the use cases that count (``count_refusals``, in the
refusal's unit; ``count_refusal_alone(command, uow)``, in a ``with uow:`` of its own on
the unit of the room that counts) and close (``close_ended_windows``) through that port.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, Self, TypeVar

from payerbridge.audit.model import AuditEvent, Refusal, RefusalWindow, window_of
from payerbridge.errors import PayerBridgeError, WrongCardGuess

__all__ = [
    "CARD_GUARD",
    "DEFAULT_WINDOW",
    "CountRefusal",
    "CountingUnit",
    "REFUSALS_ACTION",
    "Refusal",
    "RefusalCounts",
    "RefusalWindow",
    "close_ended_windows",
    "count_refusal_alone",
    "count_refusals",
    "refusal_event",
    "refusal_reason",
    "window_of",
]

REFUSALS_ACTION = "refusals"
# A demographics tried with another card, which only a reviewer could have matched:
# answered as no match on the wire, counted under its own reason here.
CARD_GUARD = "card-guard"
DEFAULT_WINDOW = timedelta(minutes=5)
# Ended windows one refusal's transaction closes at most; the upkeep's tick does the rest.
_CLOSED_PER_REFUSAL = 50

Unit = TypeVar("Unit", contravariant=True)


def refusal_reason(refusal: PayerBridgeError) -> str:
    """The reason a refused call is counted under: the error's reason code (the runbook
    it names: ``no-match``, ``too-many-attempts``, ``client-rate-limited`` ...), or
    ``card-guard`` for a wrong-card guess, which the caller was told was no match."""
    return CARD_GUARD if isinstance(refusal, WrongCardGuess) else refusal.reason_code


def refusal_event(window: RefusalWindow, *, at: datetime) -> AuditEvent:
    """The audit event of a closed window: the client, the operation, the reason, the
    window and the count; nothing of the requests themselves."""
    return AuditEvent(
        at=at,
        actor=window.client_id,
        action=REFUSALS_ACTION,
        entity_type="Client",
        entity_id=window.client_id,
        outcome="refused",
        detail={
            "operation": window.operation,
            "reason": window.reason,
            "window_start": _instant(window.start),
            "window_end": _instant(window.end),
            "count": window.count,
        },
    )


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class RecordingUnit(Protocol):
    """What of a unit of work counting and closing needs (``transactions.UnitOfWork``)."""

    @property
    def now(self) -> datetime: ...

    def record(self, *events: AuditEvent) -> None: ...


U = TypeVar("U", bound=RecordingUnit)


class RefusalCounts(Protocol[Unit]):
    """The counters of refused calls (``store.refusals.SqlRefusalCounts``)."""

    def count(self, unit: Unit, refusals: Sequence[Refusal], *, length: timedelta) -> None:
        """Add each refusal to its window's counter in ``unit``; one whose window is
        already closed goes to the first window after it that is not."""
        ...

    def take_ended(self, unit: Unit, *, now: datetime, limit: int) -> list[RefusalWindow]:
        """Close up to ``limit`` windows ended by ``now`` in ``unit`` and return them
        (oldest first); none that another transaction is counting into or closing."""
        ...


def count_refusals(
    counts: RefusalCounts[U], unit: U, refusals: Sequence[Refusal], *, length: timedelta
) -> None:
    """Count ``refusals`` in ``unit``, and chain the windows that have ended (a few: the
    refused call stays cheap)."""
    if not refusals:
        return
    counts.count(unit, refusals, length=length)
    close_ended_windows(counts, unit, limit=_CLOSED_PER_REFUSAL)


class CountingUnit(RecordingUnit, AbstractContextManager[object], Protocol):
    """A room's unit of work (``transactions.RoomUnit``, as this room may name it) that
    counts refused calls: its counters, and ``with uow:`` for one transaction."""

    @property
    def refusals(self) -> RefusalCounts[Self]: ...


C = TypeVar("C", bound=CountingUnit)


@dataclass(frozen=True)
class CountRefusal:
    """A refused call to count, in windows of ``length``."""

    refusal: Refusal
    length: timedelta


def count_refusal_alone(command: CountRefusal, uow: C) -> None:
    """Count a refusal that goes with no change (the rate limit's 429, refused before the
    operation runs) in a ``with uow:`` of its own."""
    with uow:
        count_refusals(uow.refusals, uow, [command.refusal], length=command.length)


def close_ended_windows(counts: RefusalCounts[U], unit: U, *, limit: int = 1_000) -> int:
    """One audit event in ``unit`` for each window ended by ``unit.now`` (up to
    ``limit``), recorded as it is closed; how many."""
    windows = counts.take_ended(unit, now=unit.now, limit=limit)
    unit.record(*(refusal_event(window, at=unit.now) for window in windows))
    return len(windows)
