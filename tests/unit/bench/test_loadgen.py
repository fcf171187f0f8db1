"""The benchmarks' load generator against a real socket server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from payerbridge_tools.bench.loadgen import build_request, run_load


@contextmanager
def _server(answer: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """A keep-alive HTTP/1.1 server that answers every request with ``answer``; its port
    and the request heads it received."""
    received: list[bytes] = []
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received.append(head)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await state["stop"].wait()  # type: ignore[attr-defined]
        server.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield int(state["port"]), received  # type: ignore[call-overload]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
        thread.join(5)


def test_requests_are_sent_whole_and_answers_counted_by_status() -> None:
    answer = b"HTTP/1.1 422 Unprocessable\r\nContent-Type: x\r\nContent-Length: 5\r\n\r\nnope!"
    with _server(answer) as (port, received):
        wire = [
            build_request("POST", "/p", host="h", headers={"A": "1"}, body=b"{}"),
            build_request("POST", "/q", host="h", headers={}, body=b"[1]"),
        ]
        result = run_load("127.0.0.1", port, wire, count=9, connections=3)
    assert result.requests == 9 and result.statuses == {422: 9} and not result.failures
    assert result.per_second > 0
    first = b"POST /p HTTP/1.1\r\nHost: h\r\nA: 1\r\n"
    assert sum(head.startswith(first) for head in received) == 5
    assert sum(b"Content-Length: 3" in head for head in received) == 4


def test_a_chunked_answer_is_a_failure_not_a_count() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    with _server(answer) as (port, _received):
        wire = [build_request("GET", "/", host="h", headers={})]
        result = run_load("127.0.0.1", port, wire, count=4, connections=2)
    assert result.requests == 0 and result.failures == {"ValueError": 2}
