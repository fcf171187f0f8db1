"""A light HTTP/1.1 load generator for benchmarks: requests per second of one server.

A benchmark of a server's throughput measures the client too when the client is
expensive: a Python HTTP client thread costs about as much CPU per request as a small
endpoint does, and on two cores the two share the machine. This client pre-builds every
request as bytes and, on asyncio streams over keep-alive connections, reads back only
the status line, the headers and ``Content-Length`` bytes of body. It sends nothing
but what it is given and never logs a body.

Only what a benchmark needs: HTTP/1.1 keep-alive, ``Content-Length`` answers (uvicorn's
for a whole response), no TLS, no chunked encoding (refused with an error).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["LoadResult", "build_request", "run_load"]


def build_request(
    method: str, path: str, *, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    """One request as the bytes sent on the wire."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class LoadResult:
    """How many requests were answered, by status, in how many seconds."""

    requests: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one whole response; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = None
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not supported by the load generator")
    if length is None:
        raise ValueError("an answer without Content-Length")
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str, port: int, requests: Sequence[bytes], statuses: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:  # one at a time: each waits for its answer (no pipelining)
            writer.write(request)
            statuses[await _read_response(reader)] += 1
    finally:
        writer.close()


async def _run(host: str, port: int, shares: list[list[bytes]], result: LoadResult) -> None:
    tasks = [
        asyncio.create_task(_connection(host, port, share, result.statuses)) for share in shares
    ]
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            result.failures[type(outcome).__name__] += 1


def run_load(
    host: str, port: int, requests: Sequence[bytes], *, count: int, connections: int
) -> LoadResult:
    """Send ``count`` requests (cycling over ``requests``) over ``connections`` keep-alive
    connections at once; the wall time from the first connect to the last answer."""
    work = list(itertools.islice(itertools.cycle(requests), count))
    shares = [work[c::connections] for c in range(connections)]
    result = LoadResult(requests=0, seconds=0.0)
    started = time.perf_counter()
    asyncio.run(_run(host, port, shares, result))
    result.seconds = time.perf_counter() - started
    result.requests = sum(result.statuses.values())
    return result
