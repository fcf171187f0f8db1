"""``payerbridge sources …`` and ``payerbridge mappings …``: the plan's backends the old
payer answers from, and the declarative mappings that turn their records into FHIR."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor, err, fail, out, settings_for
from payerbridge.cli.options import DataDir
from payerbridge.config import Settings

if TYPE_CHECKING:
    from payerbridge.backends.sources import Sources

__all__ = ["mappings_app", "sources_app"]

sources_app = typer.Typer(no_args_is_help=True, help="The plan's backends (sources file).")
mappings_app = typer.Typer(no_args_is_help=True, help="Declarative mappings to FHIR.")

SourcesFile = Annotated[
    Path | None,
    typer.Option(
        "--sources-file",
        help="The sources file (default: PAYERBRIDGE_SOURCES_FILE, else sources.toml in "
        "the data dir).",
        dir_okay=False,
    ),
]


def _settings(data_dir: Path | None, sources_file: Path | None) -> Settings:
    if sources_file is None:
        return settings_for(data_dir)
    return settings_for(data_dir, sources_file=sources_file)


@sources_app.command("check")
def sources_check(data_dir: DataDir = None, sources_file: SourcesFile = None) -> None:
    """Check the sources file and the mappings it names; list the sources."""
    from payerbridge.backends.sources import load_sources, sources_path

    settings = _settings(data_dir, sources_file)
    try:
        sources = load_sources(sources_path(settings.sources_file, settings.data_dir))
    except errors.InvalidInput as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue.text}")
        raise typer.Exit(2) from None
    table = Table("source", "mode", "mapping", "reads", "source format", title="Sources")
    table.add_row("store", "built-in", "-", "FHIR (payerbridge import)", "-")
    for spec in sources:
        mapping = sources.library.get(spec.mapping_ref)
        table.add_row(spec.id, spec.mode, str(mapping.ref), mapping.input, mapping.source_format)
    out.print(table)
    _check_destinations(sources, settings)


def _check_destinations(sources: Sources, settings: Settings) -> None:
    """The destinations (ADR 0053), their keys read as start-up reads them; exit 2
    naming every one that cannot be used."""
    from payerbridge.policies import egress_policy
    from payerbridge.sources.adapters import destination_adapters

    if not sources.destinations:
        return
    try:
        adapters, _ = destination_adapters(sources, egress_policy(settings))
    except errors.InvalidInput as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue.text}")
        raise typer.Exit(2) from None
    for adapter in adapters.values():
        adapter.close()
    table = Table("destination", "FHIR base", "types", "scope", "budget", title="Destinations")
    for spec in sources.destinations:
        scope = spec.auth.scope if spec.auth else "(no token)"
        types = ", ".join(spec.types) if spec.types else "every type"
        table.add_row(spec.id, spec.base_url, types, scope, f"{spec.budget_seconds:g} s")
    out.print(table)


@sources_app.command("ingest")
def sources_ingest(
    source: Annotated[str, typer.Argument(help="The replicated source's id.")],
    files: Annotated[
        list[Path], typer.Argument(help="Its files.", exists=True, dir_okay=False, readable=True)
    ],
    data_dir: DataDir = None,
    sources_file: SourcesFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Map and keep files of a replicated source: each file in one transaction, every
    record it could not read or map reported with its line or segment, the rest kept."""
    from payerbridge.bootstrap import build_platform

    try:
        platform = build_platform(_settings(data_dir, sources_file))
    except errors.InvalidInput as exc:
        raise fail(exc) from None
    from payerbridge.backends.model import FileAt
    from payerbridge.backends.replicated import IngestFile, ingest_file

    reports = []
    uow = platform.units.sources()
    try:
        for path in files:
            try:
                # The path, never its bytes: the file is read in pieces (issue 71).
                command = IngestFile(source, path.name, FileAt(path), cli_actor())
                reports.append(ingest_file(command, uow))
            except errors.PayerBridgeError as exc:
                raise fail(exc) from None
    finally:
        platform.close()
    _print_reports(reports, as_json)
    if any(r.problem_count or r.held for r in reports):
        raise typer.Exit(3)


@sources_app.command("remap")
def sources_remap(
    source: Annotated[str, typer.Argument(help="The replicated source's id.")],
    data_dir: DataDir = None,
    sources_file: SourcesFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Map every kept file of a source again with the mapping version the sources file
    names now, and report what changed."""
    from payerbridge.backends.replicated import RemapSource, remap_source
    from payerbridge.bootstrap import build_platform

    try:
        platform = build_platform(_settings(data_dir, sources_file))
    except errors.InvalidInput as exc:
        raise fail(exc) from None
    try:
        reports = remap_source(RemapSource(source, cli_actor()), platform.units.sources())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from None
    finally:
        platform.close()
    _print_reports(reports, as_json)


@sources_app.command("sync")
def sources_sync(
    source: Annotated[str, typer.Argument(help="The live source's id.")],
    data_dir: DataDir = None,
    sources_file: SourcesFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read a live source's roster (its Bulk Data export, or a search), keep its members'
    Patients with the link to their id there, and index them for matching, in one
    transaction; exits 3 when some could not be mapped or failed their profile."""
    from payerbridge.bootstrap import build_platform

    try:
        platform = build_platform(_settings(data_dir, sources_file))
    except errors.InvalidInput as exc:
        raise fail(exc) from None
    uow = platform.units.sources()
    try:
        with uow:  # the roster's members kept and indexed together
            report = uow.live.sync_roster(uow, source)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from None
    finally:
        platform.close()
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                {
                    "source": report.source_id,
                    "members": report.members,
                    "problems": report.problems,
                    "quarantined": report.held,
                }
            ).decode()
            + "\n"
        )
    else:
        err.print(
            f"[green]synced[/green] {report.source_id}: {report.members} member(s) kept and "
            f"indexed, {report.held} quarantined, {report.problems} problem(s)"
        )
    if report.problems or report.held:
        raise typer.Exit(3)


@sources_app.command("files")
def sources_files(
    source: Annotated[str, typer.Argument(help="The replicated source's id.")],
    data_dir: DataDir = None,
    sources_file: SourcesFile = None,
) -> None:
    """The files a replicated source has been given, as JSON lines."""
    from payerbridge.bootstrap import build_platform

    try:
        platform = build_platform(_settings(data_dir, sources_file))
    except errors.InvalidInput as exc:
        raise fail(exc) from None
    try:
        ingestion = platform.units.sources().sources
        ingestion.sources.replicated(source)  # an unknown or live source: said so
        for row in ingestion.files.files(source):
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
    except errors.PayerBridgeError as exc:
        raise fail(exc) from None
    finally:
        platform.close()


def _print_reports(reports, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        for report in reports:
            sys.stdout.write(orjson.dumps(report.to_json()).decode() + "\n")
        return
    for report in reports:
        if report.duplicate:
            err.print(f"[yellow]unchanged[/yellow] {report.name}: this file was ingested before")
            continue
        err.print(
            f"[green]mapped[/green] {report.name} with {report.mapping}: {report.records} "
            f"record(s) read, {report.mapped} mapped, {report.records_quarantined} "
            f"quarantined by record, {report.records_not_mapped} not mapped, "
            f"{sum(report.counts.values())} resource(s), {report.held} held in quarantine, "
            f"{report.problem_count} problem(s)"
        )
        for problem in report.problems:
            err.print(f"  {problem}")
        if report.problem_count > len(report.problems):
            err.print(f"  ... and {report.problem_count - len(report.problems)} more")
        if report.warnings:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.warnings.items()))
            err.print(f"  [yellow]warnings[/yellow] (mapped all the same): {kinds}")
            for warning in report.warning_examples[:10]:
                err.print(f"    {warning}")
        if report.changes:
            changes = ", ".join(f"{n} {kind}" for kind, n in sorted(report.changes.items()))
            err.print(f"  changes: {changes}")
    table = Table("resource type", "count", title="Mapped")
    totals: dict[str, int] = {}
    for report in reports:
        for resource_type, count in report.counts.items():
            totals[resource_type] = totals.get(resource_type, 0) + count
    for resource_type in sorted(totals):
        table.add_row(resource_type, str(totals[resource_type]))
    out.print(table)


@mappings_app.command("list")
def mappings_list(data_dir: DataDir = None, sources_file: SourcesFile = None) -> None:
    """The mappings available: the product's and the sources file's mapping_dirs."""
    from payerbridge.backends.sources import load_sources, sources_path

    settings = _settings(data_dir, sources_file)
    try:
        sources = load_sources(sources_path(settings.sources_file, settings.data_dir))
    except errors.InvalidInput as exc:
        raise fail(exc) from None
    table = Table("mapping", "reads", "gives", "source format", "examples", title="Mappings")
    for ref in sources.library.refs():
        try:
            mapping = sources.library.get(ref)
        except errors.MappingError as exc:
            table.add_row(str(ref), "[red]broken[/red]", exc.text, "", "")
            continue
        table.add_row(
            str(ref),
            mapping.input,
            ", ".join(sorted(mapping.produces)),
            mapping.source_format,
            str(len(mapping.examples)),
        )
    out.print(table)


@mappings_app.command("test")
def mappings_test(
    names: Annotated[
        list[str] | None, typer.Argument(help="name@version or name (every version); all if none.")
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Keep the actual outputs as the expected ones.")
    ] = False,
    data_dir: DataDir = None,
    sources_file: SourcesFile = None,
) -> None:
    """Run mappings' own examples: each example file mapped and compared with its
    expected output; a difference is shown as a diff and fails the command."""
    from payerbridge.backends.examples import record_example, run_example
    from payerbridge.backends.sources import load_sources, sources_path

    settings = _settings(data_dir, sources_file)
    try:
        sources = load_sources(sources_path(settings.sources_file, settings.data_dir))
    except errors.InvalidInput as exc:
        raise fail(exc) from None
    wanted = names or []
    refs = [
        ref
        for ref in sources.library.refs()
        if not wanted or str(ref) in wanted or ref.name in wanted
    ]
    if not refs:
        raise fail(errors.NotFound(f"no mapping matches {', '.join(wanted)}")) from None
    failed = 0
    for ref in refs:
        try:
            mapping = sources.library.get(ref)
        except errors.MappingError as exc:
            err.print(f"[red]broken[/red] {ref}: {exc.text}")
            failed += 1
            continue
        if not mapping.examples:
            err.print(f"[yellow]no examples[/yellow] {ref}")
            continue
        for example in mapping.examples:
            run = run_example(mapping, example)
            if record:
                record_example(run)
                err.print(f"[cyan]recorded[/cyan] {ref} {example.name}")
            elif run.passed:
                err.print(f"[green]passed[/green] {ref} {example.name}")
            else:
                failed += 1
                why = "no expected output" if run.expected is None else "differs"
                err.print(f"[red]failed[/red] {ref} {example.name}: {why}")
                for line in run.diff()[:200]:
                    out.print(line, markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)
