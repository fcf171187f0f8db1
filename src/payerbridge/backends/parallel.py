"""A large file of a replicated source read on a second process while it is mapped: the
second process reads the records (for X12, the heaviest part: pyx12's walker and its
validation) and hands them over in chunks; the first maps, checks and keeps them as it
does a file it reads itself (``ingestion.map_batches``), so that both cores work and
what is kept is the same record for record.

The file never travels whole (issue 71): a file on disk is opened by the second process
itself; any other content (an upload's bytes, a kept file's sealed pieces, which only the
first process can open) is fed to it a piece at a time, as it asks, one piece ahead.
At most ``window`` chunks wait between the two: memory stays flat in the file's size.
A reader that fails fails the ingest (its exception raised here); one that dies does too.
"""

from __future__ import annotations

import io
import multiprocessing
import queue
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from payerbridge.backends.model import FileAt, FileContent, PieceStream, RecordProblem, SourceRecord
from payerbridge.backends.readers import read_stream
from payerbridge.errors import MappingError

__all__ = ["SecondProcess", "read_on_second_process"]

Item = SourceRecord | RecordProblem
_END = "end"
_FAILED = "failed"
_ASK = "ask"  # the second process asks for the next piece of a fed file
_CHUNK = 500  # records per hand-over
_PIECE_BYTES = 1 << 20  # a fed file's piece
_WAIT_SECONDS = 5.0  # between checks that the reader is still alive


@dataclass(frozen=True)
class SecondProcess:
    """When a file is read on a second process: ``from_bytes`` and larger (0: never)."""

    from_bytes: int

    def applies(self, size: int) -> bool:
        return self.from_bytes > 0 and size >= self.from_bytes


class _FedStream(PieceStream):
    """In the second process: a file the first feeds a piece at a time, asked for one
    piece ahead. It seeks back to its start (the X12 reader reads twice), which begins a
    new pass (``generation``); a piece of an earlier pass still on its way is dropped."""

    seek_back_only = "a fed file seeks back to its start only"

    def __init__(self, handover: Any, pieces: Any) -> None:
        self._handover, self._pieces = handover, pieces
        self._generation = -1
        super().__init__()

    def _begin(self) -> None:
        self._generation += 1
        self._handover.put((_ASK, self._generation))

    def _next(self) -> bytes:
        while True:
            generation, piece = self._pieces.get()
            if generation == self._generation:
                break
        if piece:
            self._handover.put((_ASK, self._generation))  # the next, read while this is
        return piece  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Reading:
    """What the second process reads: with ``reader``, the file at ``path`` (None: fed)."""

    reader: str
    path: Path | None
    name: str
    options: dict[str, Any]


def _read_there(handover: Any, pieces: Any, reading: _Reading) -> None:
    """In the second process: the file (at its path, or fed) read, its records put in
    chunks, then the end (or the failure, as text: the first process raises it)."""
    try:
        stream: BinaryIO = (
            reading.path.open("rb")
            if reading.path is not None
            else io.BufferedReader(_FedStream(handover, pieces), buffer_size=1 << 16)
        )
        with stream:
            chunk: list[Item] = []
            for item in read_stream(reading.reader, stream, reading.name, reading.options):
                chunk.append(item)
                if len(chunk) >= _CHUNK:
                    handover.put(chunk)
                    chunk = []
            if chunk:
                handover.put(chunk)
        handover.put(_END)
    except Exception as exc:  # noqa: BLE001 - handed over whole, raised in the first process
        handover.put((_FAILED, f"{type(exc).__name__}: {exc}"))


class _Feeder:
    """In the first process: the pieces of a file the second cannot open itself, read
    as it asks (a new pass opens the content again)."""

    def __init__(self, content: FileContent, pieces: Any) -> None:
        self._content, self._pieces = content, pieces
        self._generation = -1
        self._stream: BinaryIO | None = None

    def serve(self, generation: int) -> None:
        if generation != self._generation or self._stream is None:
            self.close()
            self._stream, self._generation = self._content.open(), generation
        self._pieces.put((generation, self._stream.read(_PIECE_BYTES)))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def read_on_second_process(
    reader: str, content: FileContent, name: str, options: dict[str, Any], *, window: int = 4
) -> Generator[Item, None, None]:
    """The records ``read_stream`` gives, read on a second process."""
    context = multiprocessing.get_context("forkserver")
    handover = context.Queue(maxsize=window)
    pieces = context.Queue()  # at most two pieces on their way: one asked ahead
    pieces.cancel_join_thread()  # a piece the reader stopped before taking is dropped
    path = content.path if isinstance(content, FileAt) else None
    feeder = _Feeder(content, pieces)
    reading = _Reading(reader, path, name, options)
    process = context.Process(target=_read_there, args=(handover, pieces, reading), daemon=True)
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
            if isinstance(got, tuple) and got[0] == _ASK:
                feeder.serve(got[1])
                continue
            if isinstance(got, tuple) and got[0] == _FAILED:
                raise MappingError(f"reading {name} failed: {got[1]}")
            yield from got
    finally:
        feeder.close()
        if process.is_alive():
            process.terminate()
        process.join(timeout=10)
        handover.close()
        pieces.close()
