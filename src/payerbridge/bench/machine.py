"""What a benchmark ran on: machine, interpreter, library versions. Every report starts with it."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

__all__ = ["cpu_ticks", "machine_lines", "stolen_percent"]

_PACKAGES = (
    "payerbridge", "sqlalchemy", "orjson", "psycopg", "fastapi", "uvicorn", "uvloop", "httptools",
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
    ]


def cpu_ticks() -> tuple[int, int]:
    """All the machine's CPU ticks so far and those the hypervisor stole (Linux; zeros
    elsewhere). A noisy neighbour shows here, not in the machine's description."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return 0, 0
    ticks = [int(field) for field in fields]  # user nice system idle iowait irq softirq steal
    return sum(ticks), ticks[7] if len(ticks) > 7 else 0


def stolen_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time stolen between two ``cpu_ticks`` readings."""
    total = after[0] - before[0]
    return 100 * (after[1] - before[1]) / total if total > 0 else 0.0
