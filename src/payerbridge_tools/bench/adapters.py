"""``payerbridge bench adapters``: what the backend adapters cost.

- **X12**: 837P claims read and mapped to CARIN BB Basis ExplanationOfBenefit per second,
  and each run's peak memory, on generated files of growing size, beside pyx12's own
  parse and validation of the same file (``bench.x12``); each measure in a fresh
  process, so its peak is its own.
- **Live source**: a member's ``$everything`` at an old payer whose clinical record is a
  live FHIR server (the sandbox's quirky one), against reading that server directly with
  the same adapter: what mapping, the profile check, keeping and releasing add. Both
  in-process (ASGI), pairs interleaved, medians.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payerbridge_tools.bench.x12 import X12Run, run_x12_benchmark, write_837
from payerbridge_tools.sandbox.quirks import SERVED_TYPES

__all__ = ["LiveRun", "report_markdown", "run_live_benchmark", "run_x12_sizes"]

# Every type the sandbox's FHIR server serves: the live source is asked for them all.
LIVE_TYPES = list(SERVED_TYPES)


def run_x12_sizes(sizes: list[int], on_run: Callable[[X12Run], None]) -> list[X12Run]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-x12-") as work:
        for claims in sizes:
            path = write_837(Path(work) / f"claims-{claims}.837", claims)
            run = run_x12_benchmark(path, claims)
            on_run(run)
            runs.append(run)
            path.unlink()
    return runs


@dataclass(frozen=True)
class LiveRun:
    pairs: int
    resources_direct: int
    resources_everything: int
    direct_ms: list[float]
    everything_ms: list[float]

    @property
    def direct_median(self) -> float:
        return statistics.median(self.direct_ms)

    @property
    def everything_median(self) -> float:
        return statistics.median(self.everything_ms)


def run_live_benchmark(pairs: int = 15, members: int = 10) -> LiveRun:
    """A member's record read directly from the live source, then as ``$everything``
    through the old payer, ``pairs`` times each, interleaved."""
    import httpx

    from payerbridge.backends.ports import RecordsQuery
    from payerbridge.sources import FhirServerSettings, FhirServerSource
    from payerbridge_tools.golden import Scenario, _ask_client, _live, _old_payer
    from payerbridge_tools.sandbox.asgi import SyncASGITransport
    from payerbridge_tools.sandbox.fhir_source import FhirSourceOptions, build_app

    spec: dict[str, Any] = {
        "consent": "regular",
        "source": [
            {
                "id": "clinical",
                "mode": "live",
                "kind": "fhir-server",
                "mapping": "fhir-server-quirks@1.0.0",
                "base_url": "http://fhir-source.golden/fhir",
                "types": LIVE_TYPES,
                "budget_seconds": 30.0,
            }
        ],
        "live": {"source": "clinical", "members": members, "seed": 11},
        "request": {"member_from_roster": 1},
    }
    direct_ms: list[float] = []
    everything_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as work:
        scenario = Scenario("bench-live", Path(work), spec)
        with _old_payer(scenario, Path(work)) as platform:
            _live(scenario, platform)
            client, headers, patient = _ask_client(scenario, platform)
            direct = FhirServerSource(
                FhirServerSettings(
                    id="direct",
                    base_url="http://fhir-source.golden/fhir",
                    types=frozenset(LIVE_TYPES),
                ),
                transport=SyncASGITransport(build_app(FhirSourceOptions(members=members, seed=11))),
            )
            key = next(k for s, k in platform.live.links.keys_of(patient) if s == "clinical")
            query = RecordsQuery(key, frozenset(LIVE_TYPES))
            direct_count = everything_count = 0
            for _ in range(pairs):
                started = time.perf_counter()
                answer = direct.records(query, budget_seconds=30)
                direct_ms.append((time.perf_counter() - started) * 1000)
                direct_count = len(answer.records)
                started = time.perf_counter()
                everything_count = _everything_count(client, headers, patient)
                everything_ms.append((time.perf_counter() - started) * 1000)
            assert isinstance(client, httpx.Client)
    return LiveRun(pairs, direct_count, everything_count, direct_ms, everything_ms)


def _everything_count(client: Any, headers: dict[str, str], patient: str) -> int:
    from payerbridge_tools.golden import everything_pages

    return sum(
        1
        for _, bundle in everything_pages(client, headers, patient)
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
    )


def report_markdown(x12: list[X12Run], live: LiveRun | None, *, machine: str) -> str:
    lines = [
        "# Backend adapters",
        "",
        "`payerbridge bench adapters` (issue 52). " + machine,
        "",
        "## X12 837P to CARIN BB Basis ExplanationOfBenefit",
        "",
        "Generated 837P files (one claim per patient, one service line), read with",
        "`read_x12` (pyx12's tokenizer, map walker and per-segment validation) and mapped",
        "with `x12-837-eob@1.0.0`, beside pyx12's own parse and validation of the same",
        "file (`x12n_document`, no output). Each measure in a fresh process; peak RSS is",
        "that process's.",
        "",
        "| claims | file MB | pyx12 alone claims/s | pyx12 peak MB | read + map claims/s | "
        "read + map peak MB | share of pyx12's speed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in x12:
        share = run.mapped_claims_per_second / run.pyx12_claims_per_second
        lines.append(
            f"| {run.claims:,} | {run.file_mb:.1f} | {run.pyx12_claims_per_second:,.0f} | "
            f"{run.pyx12_peak_rss_mb:.0f} | {run.mapped_claims_per_second:,.0f} | "
            f"{run.mapped_peak_rss_mb:.0f} | {share:.0%} |"
        )
    if live is not None:
        overhead = live.everything_median - live.direct_median
        lines += [
            "",
            "## Live source: `$everything` against reading the source directly",
            "",
            f"One member of the quirky FHIR server ({live.resources_direct} resources read "
            f"directly, {live.resources_everything} released by `$everything`, Provenance "
            "included), both in-process over ASGI, "
            f"{live.pairs} interleaved pairs, medians.",
            "",
            "| read directly (ms) | `$everything` (ms) | overhead (ms) | overhead |",
            "|---:|---:|---:|---:|",
            f"| {live.direct_median:.0f} | {live.everything_median:.0f} | {overhead:.0f} | "
            f"{overhead / live.direct_median:.0%} |",
        ]
    return "\n".join(lines) + "\n"
