"""What a benchmark ran on: machine, interpreter, library versions. Every report starts with it."""

from __future__ import annotations

import os
import platform
import random
import sqlite3
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

__all__ = ["machine_lines", "process_cpu_seconds"]

_PACKAGES = (
    "payerbridge",
    "sqlalchemy",
    "orjson",
    "psycopg",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "dbos",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def cpu_reference_ms() -> float:
    """The best of five runs of a fixed pure-Python loop. The same machine type runs it
    at different speeds on different days (a shared host's clock and neighbours), by
    more than most changes move a benchmark: every report carries it, to compare by."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for step in range(1_000_000):
            total += step
        best = min(best, time.perf_counter() - start)
    return best * 1000


def memory_reference_ns() -> float:
    """Nanoseconds per read of a fixed pure-Python loop reading a 4M-item list at
    random places (far beyond the CPU's caches); the best of three. The CPU loop above
    misses what this catches: the same machine type has run memory-bound code (matching,
    indexing) three times slower on a day its memory answered slowly."""
    items = list(range(4_000_000))
    order = random.Random(0).choices(range(len(items)), k=1_000_000)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for index in order:
            total += items[index]
        best = min(best, time.perf_counter() - start)
    return best * 1e9 / len(order)


def machine_lines() -> list[str]:
    versions = []
    for package in _PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"{_memory_gib()} RAM",
        f"- os: {platform.platform()}",
        f"- python: {platform.python_implementation()} {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}",
        f"- versions: {', '.join(versions)}",
        f"- CPU speed: a fixed pure-Python loop (1M additions) in {cpu_reference_ms():.0f} ms, "
        "best of 5, timed as the report is written (lower is faster)",
        f"- memory speed: {memory_reference_ns():.0f} ns per read of a 4M-item list at "
        "random places, pure Python, best of 3 (lower is faster)",
    ]


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User and system CPU of a process so far (``/proc/<pid>/stat``), with that of its
    children it has waited for when ``children``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")
