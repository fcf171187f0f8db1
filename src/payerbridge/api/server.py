"""The HTTP server ``payerbridge serve`` runs: uvicorn's, its clock ticking once a second.

uvicorn's main loop wakes ten times a second to see whether it should stop, and once a
second of those refreshes the ``Date`` header: a tenth of a percent of a core in an idle
process (ADR 0050). Here it wakes once a second, when the header is due, and at once
when a signal asks it to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

__all__ = ["QuietServer"]

# uvicorn's on_tick refreshes the Date header on every tenth tick of 0.1 s.
_TICKS_PER_SECOND = 10


class QuietServer(uvicorn.Server):
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + _TICKS_PER_SECOND) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
