"""A large file of a replicated source read on a second process while it is mapped: the
second process reads the records (for X12, the heaviest part: pyx12's walker and its
validation) and hands them over in chunks; the first maps, checks and keeps them as it
does a file it reads itself (``ingestion.map_batches``), so that both cores work and
what is kept is the same record for record.

At most ``window`` chunks wait between the two: memory stays flat in the file's size.
A reader that fails fails the ingest (its exception raised here); one that dies does too.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.readers import read_stream
from payerbridge.errors import MappingError

__all__ = ["SecondProcess", "read_on_second_process"]

Item = SourceRecord | RecordProblem
_END = "end"
_FAILED = "failed"
_CHUNK = 500  # records per hand-over
_WAIT_SECONDS = 5.0  # between checks that the reader is still alive


@dataclass(frozen=True)
class SecondProcess:
    """When a file is read on a second process: ``from_bytes`` and larger (0: never)."""

    from_bytes: int

    def applies(self, size: int) -> bool:
        return self.from_bytes > 0 and size >= self.from_bytes


def _read_there(
    handover: Any, reader: str, body: bytes, name: str, options: dict[str, Any]
) -> None:
    """In the second process: the file read, its records put in chunks, then the end (or
    the failure, as text: the first process raises it)."""
    import io

    try:
        chunk: list[Item] = []
        for item in read_stream(reader, io.BytesIO(body), name, options):
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                handover.put(chunk)
                chunk = []
        if chunk:
            handover.put(chunk)
        handover.put(_END)
    except Exception as exc:  # noqa: BLE001 - handed over whole, raised in the first process
        handover.put((_FAILED, f"{type(exc).__name__}: {exc}"))


def read_on_second_process(
    reader: str, body: bytes, name: str, options: dict[str, Any], *, window: int = 4
) -> Iterator[Item]:
    """The records ``read_stream`` gives, read on a second process."""
    context = multiprocessing.get_context("forkserver")
    handover = context.Queue(maxsize=window)
    process = context.Process(
        target=_read_there, args=(handover, reader, body, name, options), daemon=True
    )
    process.start()
    try:
        while True:
            try:
                got = handover.get(timeout=_WAIT_SECONDS)
            except queue.Empty:
                if not process.is_alive():
                    raise MappingError(
                        f"the process reading {name} stopped (exit code {process.exitcode})"
                    ) from None
                continue
            if got == _END:
                return
            if isinstance(got, tuple) and got[0] == _FAILED:
                raise MappingError(f"reading {name} failed: {got[1]}")
            yield from got
    finally:
        if process.is_alive():
            process.terminate()
        process.join(timeout=10)
        handover.close()
