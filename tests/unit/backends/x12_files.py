"""X12 test files made on the fly: the bench's generated 837P, and a non-seekable
stream over it."""

from __future__ import annotations

import io
from collections.abc import Iterator

from payerbridge_tools.bench.x12 import claims_837

__all__ = ["GeneratedStream", "claims_837"]


class GeneratedStream(io.RawIOBase):
    """A readable, non-seekable byte stream over generated text."""

    def __init__(self, parts: Iterator[str]) -> None:
        self._parts = parts
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray) -> int:  # type: ignore[override]
        while len(self._buffer) < len(target):
            try:
                self._buffer += next(self._parts).encode()
            except StopIteration:
                break
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
