"""The process's clock: the wall clock, or for rehearsals and tests a simulated one.

The rule's clocks run over weeks and quarters (ADR 0037, 0040); a rehearsal of them must
not sleep through them. With ``PAYERBRIDGE_SIMULATED_CLOCK_FILE`` set, the platform's
time is read from that file: it holds a FHIR instant, the time it was *when the file was
written*, and runs on from there at the wall clock's pace. Rewriting the file moves every
process that reads it (both payers of a rehearsal, their workers and CLI commands) to the
new instant at once, so tokens, consents, deadlines and audit times all agree.

Every reading of the time that a rule or a peer depends on goes through ``utcnow``;
durations (timeouts, rate limits, latency) stay on the monotonic clock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from payerbridge.errors import InvalidInput
from payerbridge.timestamps import instant_of

__all__ = ["SimulatedClock", "is_simulated", "simulate", "utcnow"]

logger = logging.getLogger(__name__)


class SimulatedClock:
    """The instant a file holds, as of the file's last change, running on from then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = -1
        self._set_to = datetime.min.replace(tzinfo=UTC)
        self._written = 0.0
        self._read()  # a file that cannot be read stops start-up, not a request later

    def _read(self) -> None:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidInput(
                f"the simulated clock file {self.path} cannot be read: {exc}"
            ) from exc
        instant = instant_of(text)
        if instant is None:
            raise InvalidInput(
                f"the simulated clock file {self.path} must hold a FHIR instant with a zone "
                f"(e.g. 2027-01-04T09:00:00Z), not {text[:40]!r}"
            )
        self._stamp, self._set_to, self._written = stat.st_mtime_ns, instant, stat.st_mtime

    def now(self) -> datetime:
        try:
            changed = self.path.stat().st_mtime_ns != self._stamp
        except OSError:
            changed = False  # a file being replaced: the last instant read stands
        if changed:
            try:
                self._read()
            except InvalidInput:
                logger.warning("simulated clock file unreadable; keeping its last instant")
        return self._set_to + timedelta(seconds=max(0.0, _wall() - self._written))


def _wall() -> float:
    return datetime.now(UTC).timestamp()


_simulated: SimulatedClock | None = None


def utcnow() -> datetime:
    """Now, in UTC: the wall clock, or the simulated one when a rehearsal set it."""
    if _simulated is None:
        return datetime.now(UTC)
    return _simulated.now()


def simulate(path: Path | None) -> None:
    """Read the time from ``path`` from now on (None: the wall clock); set as the
    platform is built, from ``PAYERBRIDGE_SIMULATED_CLOCK_FILE``."""
    global _simulated
    if path is None:
        _simulated = None
        return
    if _simulated is None or _simulated.path != path:
        _simulated = SimulatedClock(path)
        logger.warning("the clock is simulated: read from %s", path)


def is_simulated() -> bool:
    return _simulated is not None
