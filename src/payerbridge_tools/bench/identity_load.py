"""Loading a population into the identity index for ``bench identity``: one file against a
plan's per-type export.

A plan's FHIR server exports one NDJSON file per resource type. ``time_loads`` writes an
``IdentitySet``'s members three ways and loads each into a fresh instance (SQLite in a
temporary data dir), timing the import with its indexing and then the training, as
``payerbridge import`` and ``payerbridge identity train`` run them:

- **one file**: each member's Patient line, then its Coverage line;
- **per type, one call**: ``Patient.ndjson``, then ``Coverage.ndjson``, in one import;
- **per type, two calls**: the same two files in two imports, one after the other (the
  second updates members the first has already indexed).

Writing the files is not counted. Nothing about the people is printed or logged.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from payerbridge_tools.bench.identity_data import IdentitySet

__all__ = ["LAYOUTS", "LoadTime", "load_lines", "time_loads"]

LAYOUTS = ("one file", "per type, one call", "per type, two calls")


@dataclass(frozen=True)
class LoadTime:
    """One load of a population: import with indexing (all its calls), then training."""

    members: int
    layout: str
    import_seconds: float
    train_seconds: float
    calls: tuple[float, ...]  # each import call's seconds


def _write(data: IdentitySet, folder: Path) -> dict[str, list[list[Path]]]:
    """The population as one file and as one file per type; each layout's import calls."""
    single, patients, coverages = (
        folder / "members.ndjson",
        folder / "Patient.ndjson",
        folder / "Coverage.ndjson",
    )
    with single.open("wb") as one, patients.open("wb") as ps, coverages.open("wb") as cs:
        for i in range(data.member_count):
            patient, coverage = data.member_resources(i)
            patient_line = orjson.dumps(patient, option=orjson.OPT_APPEND_NEWLINE)
            coverage_line = orjson.dumps(coverage, option=orjson.OPT_APPEND_NEWLINE)
            one.write(patient_line + coverage_line)
            ps.write(patient_line)
            cs.write(coverage_line)
    return {
        "one file": [[single]],
        "per type, one call": [[patients, coverages]],
        "per type, two calls": [[patients], [coverages]],
    }


def _load(data_dir: Path, calls: Sequence[Sequence[Path]]) -> tuple[list[float], float]:
    """Each call's import seconds into a fresh instance, then the training's."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.identity.service import TrainModel, train_on_members

    # The instance's own SQLite file, named so that an ambient database URL is never used.
    settings = load_settings(
        data_dir=data_dir, database_url=f"sqlite:///{(data_dir / 'payerbridge.db').resolve()}"
    )
    seconds = []
    for paths in calls:
        platform = build_platform(settings)
        try:
            started = time.perf_counter()
            reports = platform.import_member_files(paths)
            seconds.append(time.perf_counter() - started)
        finally:
            platform.close()
        if not all(report.accepted for report in reports):
            raise RuntimeError("the bench population was rejected")
    platform = build_platform(settings)
    try:
        started = time.perf_counter()
        train_on_members(TrainModel(seed=42), platform.units.identity())  # as identity train
        return seconds, time.perf_counter() - started
    finally:
        platform.close()


def time_loads(
    data: IdentitySet,
    *,
    layouts: Sequence[str] = LAYOUTS,
    progress: Callable[[str], None] | None = None,
) -> list[LoadTime]:
    """Load ``data``'s members in each of ``layouts``, one after the other."""
    unknown = sorted(set(layouts) - set(LAYOUTS))
    if unknown:
        raise ValueError(f"unknown layout {unknown}; choose from {list(LAYOUTS)}")
    times = []
    with tempfile.TemporaryDirectory(prefix="pb-bench-load-") as scratch:
        calls_of = _write(data, Path(scratch))
        for layout in layouts:
            with tempfile.TemporaryDirectory(prefix="pb-bench-load-dir-") as data_dir:
                calls, train = _load(Path(data_dir), calls_of[layout])
            times.append(LoadTime(data.member_count, layout, sum(calls), train, tuple(calls)))
            if progress is not None:
                progress(
                    f"load: {data.member_count:,} members, {layout}: import and index "
                    f"{sum(calls):.1f}s, training {train:.1f}s"
                )
    return times


def load_lines(times: Sequence[LoadTime]) -> list[str]:
    """The report's section on loading."""
    lines = [
        "",
        "## Loading: one file against a per-type export",
        "",
    ]
    if not times:
        return [*lines, "Not measured in this run (`--load` was not given)."]
    lines += [
        "The largest synthetic population loaded into a fresh SQLite instance three ways",
        "(`bench/identity_load.py`): one file of Patient and Coverage lines; a plan's",
        "per-type export (`Patient.ndjson`, `Coverage.ndjson`) in one `payerbridge import`",
        "call; the same two files in two calls. Import includes indexing; training as",
        "`payerbridge identity train` runs it.",
        "",
        "| members | layout | import + index s | each call s | training s | in all s |",
        "|---:|---|---:|---|---:|---:|",
    ]
    lines += [
        f"| {t.members:,} | {t.layout} | {t.import_seconds:.1f} "
        f"| {' + '.join(f'{c:.1f}' for c in t.calls)} | {t.train_seconds:.1f} "
        f"| {t.import_seconds + t.train_seconds:.1f} |"
        for t in times
    ]
    return lines
