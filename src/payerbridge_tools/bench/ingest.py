"""``payerbridge bench ingest``: `sources ingest` of a large 834 and 837 the sandbox
writes, in claims (members) per second of wall time and per CPU-second, and peak memory.

The files are built of slices of the sandbox population (``x12_slice``: one interchange
each, seeds apart), so that a million claims are written without holding them. Each
ingest runs as the CLI does, in a fresh data dir; the CPU time and memory are those of
its whole process tree (the process that reads a large file on the side included),
sampled from /proc. With ``--base-src``, the same smaller file is ingested by that
source tree and by this one, in interleaved pairs: the A/B against the commit before.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

__all__ = ["IngestRun", "report_markdown", "run_ingest", "write_files"]

_SLICE = 5_000  # members generated at a time
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class IngestRun:
    label: str  # what ran: "head" or "base", and the file
    kind: str  # 834 or 837
    records: int
    file_mb: float
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.records / self.cpu_seconds


def write_files(out: Path, members: int, claims: int, as_of: date) -> tuple[Path, Path, int, int]:
    """An 834 of at least ``members`` members and an 837P of at least ``claims`` claims,
    slice by slice; the counts written."""
    from payerbridge_tools.population import build_network
    from payerbridge_tools.sandbox.source_partners import x12_slice

    network = build_network(1)
    payer = network.payers[0]
    enrollment, professional = out / "enrollment.834", out / "professional.837"
    written_members = written_claims = 0
    with enrollment.open("w") as e834, professional.open("w") as e837:
        seed = 0
        while written_members < members or written_claims < claims:
            seed += 1
            text_834, text_837, n_members, n_claims = x12_slice(
                network, payer, _SLICE, 1000 + seed, as_of, control=2 * seed
            )
            if written_members < members:
                e834.write(text_834 + "\n")
                written_members += n_members
            if written_claims < claims:
                e837.write(text_837 + "\n")
                written_claims += n_claims
    return enrollment, professional, written_members, written_claims


def _tree(root: int) -> list[int]:
    """``root`` and its descendants now running."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _sample(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, RSS MB) of one process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    cpu = (int(fields[11]) + int(fields[12])) / _TICK
    return cpu, int(fields[21]) * _PAGE / 2**20


def _measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s of the process tree, peak RSS MB of the tree, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cpu: dict[int, float] = {}
    peak = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            rss = 0.0
            for pid in _tree(process.pid):
                sampled = _sample(pid)
                if sampled is not None:
                    cpu[pid] = max(cpu.get(pid, 0.0), sampled[0])
                    rss += sampled[1]
            peak = max(peak, rss)
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = process.communicate()
    done.set()
    watcher.join()
    if process.returncode not in (0, 3):
        raise RuntimeError(f"sources ingest failed ({process.returncode}): {err.decode()[-2000:]}")
    return time.perf_counter() - started, sum(cpu.values()), peak, out.decode()


def run_ingest(
    label: str, src: Path | None, files: list[tuple[str, str, Path, int]], mapping_version: str
) -> list[IngestRun]:
    """Each (source id, kind, file, records) ingested in turn into one fresh data dir by
    the source tree ``src`` (None: this one)."""
    data = Path(tempfile.mkdtemp(prefix="pb-bench-ingest-"))
    sources = data / "sources.toml"
    mappings = {"834": "x12-834-enrollment", "837": "x12-837-eob"}
    sources.write_text(
        "".join(
            f'[[source]]\nid = "{source}"\nmode = "replicated"\n'
            f'mapping = "{mappings[kind]}@{mapping_version}"\n'
            for source, kind, _, _ in files
        )
    )
    env = {**os.environ, "PAYERBRIDGE_DATA_DIR": str(data)}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    base = [sys.executable, "-m", "payerbridge"]
    subprocess.run([*base, "db", "upgrade"], env=env, check=True, capture_output=True)
    runs = []
    for source, kind, path, records in files:
        command = [*base, "sources", "ingest", source, str(path), "--sources-file", str(sources)]
        wall, cpu, peak, _ = _measured(command, env)
        mb = path.stat().st_size / 2**20
        runs.append(IngestRun(f"{label} {path.name}", kind, records, mb, wall, cpu, peak))
    return runs


def report_markdown(
    runs: list[IngestRun], pairs: list[tuple[IngestRun, IngestRun]], machine: list[str]
) -> str:
    lines = [
        "# `sources ingest` of large X12 files",
        "",
        "`payerbridge bench ingest` (issue 71). Files the sandbox writes (slices of its",
        "population, one interchange each); each ingest a fresh CLI process on SQLite, its",
        "CPU and memory those of its process tree (the process reading a large file beside",
        "it included).",
        "",
        *machine,
        "",
        "| run | records | file MB | wall s | CPU s | records/s | records per CPU-s | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(_row(run))
    if pairs:
        lines += [
            "",
            "## A/B against the commit before, the same file, interleaved pairs",
            "",
            "| pair | base records/s | head records/s | base per CPU-s | head per CPU-s |",
            "|---|---:|---:|---:|---:|",
        ]
        for n, (base, head) in enumerate(pairs, 1):
            lines.append(
                f"| {n} | {base.per_second:,.0f} | {head.per_second:,.0f} | "
                f"{base.per_cpu_second:,.0f} | {head.per_cpu_second:,.0f} |"
            )
        ratio = statistics.median(h.per_cpu_second / b.per_cpu_second for b, h in pairs)
        wall = statistics.median(h.per_second / b.per_second for b, h in pairs)
        lines += ["", f"Median: {wall:.1f}x the records per second, {ratio:.1f}x per CPU-second."]
    return "\n".join(lines) + "\n"


def _row(run: IngestRun) -> str:
    return (
        f"| {run.label} | {run.records:,} | {run.file_mb:,.1f} | {run.seconds:,.1f} | "
        f"{run.cpu_seconds:,.1f} | {run.per_second:,.0f} | {run.per_cpu_second:,.0f} | "
        f"{run.peak_rss_mb:,.0f} |"
    )
