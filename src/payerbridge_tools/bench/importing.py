"""``payerbridge bench import``: resources/s and peak memory of the streaming importer.

Each run imports one generated NDJSON file into a fresh data directory in a fresh
process, so peak RSS belongs to that import alone; growing file sizes show whether
memory stays flat. Medians over the repeats are reported.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson

from payerbridge_tools.bench.machine import machine_lines

__all__ = ["ImportRun", "run_import_benchmark"]


@dataclass(frozen=True)
class ImportRun:
    members: int
    resources: int
    file_mb: float
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


def _write_population(path: Path, members: int, seed: int) -> int:
    from payerbridge_tools.population import build_network, generate_payer_population

    network = build_network(1)
    count = 0
    with path.open("wb") as handle:
        for item in generate_payer_population(
            network, network.payers[0], members, seed, date(2026, 11, 1)
        ):
            handle.write(orjson.dumps(item) + b"\n")
            count += 1
    return count


def _one_run(path: Path) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="pb-bench-import-"))
    # Embedded SQLite in a fresh data dir: a PostgreSQL run needs a fresh database per run too.
    env = {k: v for k, v in os.environ.items() if k != "PAYERBRIDGE_DATABASE_URL"}
    env["PAYERBRIDGE_LOG_LEVEL"] = "WARNING"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "payerbridge_tools.bench.importing", str(path), str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run_import_benchmark(
    *,
    sizes: list[int],
    repeat: int,
    seed: int,
    on_run: Callable[[ImportRun], None],
) -> list[list[ImportRun]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="pb-bench-data-") as scratch:
        for members in sizes:
            path = Path(scratch) / f"members-{members}.ndjson"
            resources = _write_population(path, members, seed)
            runs = []
            for _ in range(repeat):
                measured = _one_run(path)
                run = ImportRun(
                    members,
                    resources,
                    path.stat().st_size / 1e6,
                    measured["seconds"],
                    measured["peak_rss_kb"] / 1024,
                )
                on_run(run)
                runs.append(run)
            results.append(runs)
            path.unlink()
    return results


def report_markdown(results: list[list[ImportRun]], *, backend: str, repeat: int) -> str:
    lines = [
        "# Benchmark: streaming import",
        "",
        "`payerbridge bench import` imports generated sandbox NDJSON (Patients, Coverage, "
        "clinical and claims history, Provenance) into a fresh data directory, one "
        "process per run. Medians over the repeats.",
        "",
        *machine_lines(),
        f"- backend: {backend}; repeats per size: {repeat}",
        "",
        "| members | resources | file MB | median resources/s | min–max resources/s "
        "| median seconds | median peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for runs in results:
        rates = [r.rate for r in runs]
        first = runs[0]
        lines.append(
            f"| {first.members:,} | {first.resources:,} | {first.file_mb:.1f} "
            f"| {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {statistics.median(r.seconds for r in runs):.2f} "
            f"| {statistics.median(r.peak_rss_mb for r in runs):.0f} |"
        )
    return "\n".join(lines) + "\n"


def _worker(path: Path, data_dir: Path) -> None:
    """Run in a child process: import one file, print seconds and peak RSS as JSON."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    platform = build_platform(load_settings(data_dir=data_dir))
    started = time.perf_counter()
    report = platform.import_members(path)
    seconds = time.perf_counter() - started
    platform.close()
    if not report.accepted:
        raise SystemExit(f"benchmark file rejected: {report.errors[:3]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(
        json.dumps({"seconds": seconds, "peak_rss_kb": peak, "resources": report.resources}) + "\n"
    )


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
