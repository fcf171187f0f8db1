"""``payerbridge``: serve, import, partners, config and the other commands (errors become
exit codes as ``cli.console`` says); bench, sandbox and demo come from ``cli.plugins``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor, err, fail, out, settings_for
from payerbridge.cli.options import DataDir
from payerbridge.config import redacted
from payerbridge.routing.model import PartnerAuth
from payerbridge.routing.unit import PartnersUnit
from payerbridge.types import ExchangeId, PartnerId

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="payerbridge: payer-to-payer exchange platform (HRex / PDex).",
)
partners_app = typer.Typer(no_args_is_help=True, help="Register and list partner payers.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective configuration.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
workers_app = typer.Typer(no_args_is_help=True, help="Workflow workers.")
exchanges_app = typer.Typer(no_args_is_help=True, help="Outbound exchanges.")
app.add_typer(partners_app, name="partners")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(workers_app, name="workers")
app.add_typer(exchanges_app, name="exchanges")


@app.callback()
def _quiet_logs() -> None:
    """Commands report through the console; only warnings of the libraries reach stderr.
    ``serve`` reconfigures logging from the settings."""
    from payerbridge.logging import configure_logging

    configure_logging("WARNING", "text")


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers/--no-workers",
            help="Also run exchange workflows here (else only `payerbridge worker` runs them).",
        ),
    ] = True,
) -> None:
    """Run one instance: the FHIR and exchange APIs and (by default) a workflow worker."""
    import contextlib

    import uvicorn

    from payerbridge.api.app import create_app
    from payerbridge.api.server import QuietServer
    from payerbridge.bootstrap import build_platform
    from payerbridge.collector import settle_for_serving
    from payerbridge.logging import configure_logging
    from payerbridge.metrics import share_metrics

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings_for(data_dir, **overrides)
    configure_logging(settings.log_level, settings.log_format)
    share_metrics(settings)
    platform = build_platform(settings)
    _metrics_listener(platform)
    tls: dict[str, Any] = {}
    if settings.tls_certfile is not None:
        import ssl

        from payerbridge.api.tls import ClientCertificateProtocol

        tls = {
            "ssl_certfile": str(settings.tls_certfile),
            "ssl_keyfile": str(settings.tls_keyfile),
            "http": ClientCertificateProtocol,
        }
        if settings.tls_client_ca is not None:
            tls["ssl_ca_certs"] = str(settings.tls_client_ca)
            tls["ssl_cert_reqs"] = ssl.CERT_OPTIONAL  # SMART clients need no certificate
    app = create_app(platform, run_workers=workers)
    settle_for_serving()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        **tls,
    )
    server = QuietServer(config)  # uvicorn.run's server, waking once a second (ADR 0050)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn.run's exit code for a server that did not start


@app.command("worker")
def worker(
    data_dir: DataDir = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="Stable id of this worker (PAYERBRIDGE_WORKER_ID). Restarted with the same "
            "id, it resumes the workflows it was running."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve this worker's metrics on this port, without a token, for a scraper "
            "on a private network (PAYERBRIDGE_METRICS_PORT).",
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run exchange workflows without serving HTTP; start as many as the database allows."""
    import signal
    import threading

    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows
    from payerbridge.collector import settle_for_serving
    from payerbridge.logging import configure_logging
    from payerbridge.metrics import share_metrics

    overrides = {k: v for k, v in (("worker_id", worker_id), ("metrics_port", metrics_port)) if v}
    settings = settings_for(data_dir, **overrides)
    configure_logging(settings.log_level, settings.log_format)
    share_metrics(settings)
    platform = build_platform(settings)
    listener = _metrics_listener(platform)  # this worker as a scrape target of its own
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    launch_workflows(platform, work=True)
    settle_for_serving()
    err.print(f"worker {settings.worker_id} running; Ctrl-C to stop")
    stop.wait()
    if listener is not None:
        listener.shutdown()
        listener.server_close()
    shutdown_workflows(platform)
    platform.close()


def _metrics_listener(platform: Any) -> Any:
    """The metrics listener of ``metrics_port`` (None when unset), for a scraper on a
    private network; exit 2 naming the setting when its port cannot be bound."""
    from payerbridge.metrics import serve_metrics

    settings = platform.settings
    if settings.metrics_port is None:
        return None
    try:
        return serve_metrics(
            platform.metrics, host=settings.metrics_host, port=settings.metrics_port
        )
    except errors.PayerBridgeError as exc:
        platform.close()
        raise fail(exc) from exc


@workers_app.command("recover")
def workers_recover(
    worker_ids: Annotated[
        list[str], typer.Argument(help="Ids of the dead workers whose workflows to take over.")
    ],
    data_dir: DataDir = None,
) -> None:
    """Hand the unfinished workflows of dead workers back to the queue, where any live
    worker picks them up (run it once a worker is known to be gone for good)."""
    from dbos import DBOS

    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows

    settings = settings_for(data_dir, worker_id=f"recover-{uuid.uuid4().hex[:8]}")
    platform = build_platform(settings)
    launch_workflows(platform, work=False)
    try:
        # The same call as DBOS's admin endpoint /dbos-workflow-recovery.
        handles = DBOS._recover_pending_workflows(worker_ids)
    finally:
        shutdown_workflows(platform)
        platform.close()
    out.print(f"{len(handles)} workflow(s) of {', '.join(worker_ids)} returned to the queue")


@exchanges_app.command("replay")
def exchanges_replay(
    exchange_id: Annotated[str, typer.Argument(help="The dead-lettered exchange.")],
    data_dir: DataDir = None,
) -> None:
    """Resume a dead-lettered exchange: consent and identity are checked again first.
    Audited with the operating-system user as the actor."""
    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows
    from payerbridge.exchange.operations.interventions import replay
    from payerbridge.workflows.exchange import enqueue_exchange

    settings = settings_for(data_dir, worker_id=f"cli-{uuid.uuid4().hex[:8]}")
    platform = build_platform(settings)
    launch_workflows(platform, work=False)
    try:
        uow = platform.units.exchange()
        replay(uow, ExchangeId(exchange_id), actor=cli_actor(), replay_key=None)
        record = uow.exchanges.get(ExchangeId(exchange_id))
        enqueue_exchange(record.id, record.partner_id, replay_count=record.replay_count)
    finally:
        shutdown_workflows(platform)
        platform.close()
    out.print(
        f"exchange {exchange_id} replayed (replay {record.replay_count}); a worker resumes it"
    )


@exchanges_app.command("cancel")
def exchanges_cancel(
    exchange_id: Annotated[str, typer.Argument(help="The waiting exchange.")],
    note: Annotated[str, typer.Option(help="Why it is cancelled (kept with the exchange).")],
    data_dir: DataDir = None,
) -> None:
    """End an exchange that waits (a review, a replay, its next attempt) as failed,
    cancelled with your note. Audited with the operating-system user as the actor."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.exchange.operations.interventions import cancel

    platform = build_platform(settings_for(data_dir))
    try:
        cancel(platform.units.exchange(), ExchangeId(exchange_id), actor=cli_actor(), note=note)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    out.print(f"exchange {exchange_id} cancelled")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Create or migrate the database schema to the newest version."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    platform.close()
    out.print("database schema is up to date")


@app.command("import")
def import_files(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="FHIR NDJSON files or .json Bundles.", exists=True, dir_okay=False, readable=True
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Load member data; each file is all-or-nothing, invalid lines reported by number.

    The files of one call commit together, and the members they touch are indexed for
    matching once, after the last file: give a plan's per-type export (Patient.ndjson,
    Coverage.ndjson, ...) in one call."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            tasks = {
                path: progress.add_task(path.name, total=path.stat().st_size) for path in files
            }
            reports = platform.import_member_files(
                files, progress=lambda path, size: progress.advance(tasks[path], size)
            )
    finally:
        platform.close()
    rejected = 0
    totals: dict[str, int] = {}
    for report in reports:
        if report.accepted:
            for resource_type, count in report.counts.items():
                totals[resource_type] = totals.get(resource_type, 0) + count
            err.print(f"[green]imported[/green] {report.path}: {report.resources} resources")
            continue
        rejected += 1
        err.print(
            f"[red]rejected[/red] {report.path}: {report.error_count} invalid line(s); "
            "nothing from this file was stored"
        )
        for line_error in report.errors:
            err.print(f"  line {line_error.line}: {line_error.text}")
        if report.error_count > len(report.errors):
            err.print(f"  ... and {report.error_count - len(report.errors)} more")
    table = Table("resource type", "imported", title="Import")
    for resource_type in sorted(totals):
        table.add_row(resource_type, str(totals[resource_type]))
    table.add_row("[bold]total[/bold]", f"[bold]{sum(totals.values())}[/bold]")
    out.print(table)
    if rejected:
        raise typer.Exit(2)


@partners_app.command("add")
def partners_add(
    partner_id: Annotated[str, typer.Option("--id", help="Short id, e.g. 'acme-health'.")],
    name: Annotated[str, typer.Option(help="Organization name.")],
    npi: Annotated[str, typer.Option(help="The partner's NPI.")],
    base_url: Annotated[str, typer.Option(help="The partner's FHIR base URL.")],
    auth: Annotated[
        PartnerAuth | None,
        typer.Option(
            help="How we get tokens from it: smart (our client id there and our key), "
            "udap (we register there with our community certificate) or none. Unset: smart "
            "when --client-id is given, else none."
        ),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            help="Our client id at the partner's authorization server; SMART: register our "
            "key with the partner (`payerbridge keys client-jwks`); UDAP: unset, we register."
        ),
    ] = None,
    token_url: Annotated[
        str | None,
        typer.Option(help="Its token endpoint; unset: read from its SMART configuration."),
    ] = None,
    scope: Annotated[str | None, typer.Option(help="The scopes we ask it for.")] = None,
    also: Annotated[
        list[str] | None,
        typer.Option(
            "--also",
            help="Another FHIR base at which it answers (a region, a recovery site): "
            "exchanges fail over to it, in the order given, when base_url does not answer.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register (or update) a partner payer; a changed endpoint is checked first, and a
    UDAP partner is registered with."""
    from payerbridge.routing.enrolment import EnrolPartner, enrol_partner
    from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, Partner, PartnerEndpoint

    urls = [base_url, *(also or [])]
    partner = Partner(
        PartnerId(partner_id),
        name,
        npi,
        base_url,
        client_id=client_id,
        token_url=token_url,
        scope=scope or DEFAULT_PARTNER_SCOPE,
        auth=auth or PartnerAuth.NONE,
        endpoints=tuple(PartnerEndpoint(url, n) for n, url in enumerate(urls)),
    )
    enrolled = _with_directory(
        data_dir, lambda uow: enrol_partner(EnrolPartner(partner, cli_actor()), uow)
    )
    verb = "registered" if enrolled.created else "updated"
    out.print(f"partner '{partner_id}' {verb} ({enrolled.partner.auth.value})")
    if enrolled.capabilities is not None:
        out.print(_capability_line(enrolled.capabilities))
    elif enrolled.unread is not None:
        out.print(f"[yellow]capabilities not read:[/yellow] {enrolled.unread}")
        out.print(f"read them later with: payerbridge partners refresh {partner_id}")


def _with_directory(data_dir: Path | None, use: Callable[[PartnersUnit], T]) -> T:
    """Run ``use(uow)`` on the partner directory's unit; a refusal is printed with its
    reasons."""
    from payerbridge.bootstrap import build_platform

    try:
        platform = build_platform(settings_for(data_dir))
        try:
            return use(platform.units.partners())
        finally:
            platform.close()
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc


def _capability_line(capabilities: Any) -> str:
    guides = ", ".join(f"{g} {v or '?'}" for g, v in sorted(capabilities.guides.items()))
    operations = ", ".join(sorted(capabilities.operations)) or "none"
    return (
        f"FHIR {capabilities.fhir_version or '?'}; guides: {guides or 'none declared'}; "
        f"operations: {operations} (read {capabilities.read_at.isoformat(timespec='seconds')})"
    )


@partners_app.command("refresh")
def partners_refresh(
    partner_id: Annotated[str, typer.Argument(help="The partner's id.")],
    data_dir: DataDir = None,
) -> None:
    """Read a partner's CapabilityStatement (and SMART configuration or UDAP metadata)
    again, keep it, and print what changed since the last reading."""
    from payerbridge.routing.enrolment import RefreshPartner, refresh_partner

    refreshed = _with_directory(
        data_dir,
        lambda uow: refresh_partner(RefreshPartner(PartnerId(partner_id), cli_actor()), uow),
    )
    out.print(_capability_line(refreshed.capabilities))
    for change in refreshed.changes or ["no change"]:
        out.print(f"  - {change}")
    for change in refreshed.endpoint_changes:  # from its davinci-configuration (ADR 0061)
        out.print(f"  - endpoints: {change}")


@partners_app.command("show")
def partners_show(
    partner_id: Annotated[str, typer.Argument(help="The partner's id.")],
    data_dir: DataDir = None,
) -> None:
    """Print a partner as JSON: how we call it, its last capability reading, its breaker."""
    from payerbridge.api.routers.partners import partner_public
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        uow = platform.units.partner_health()
        partner = uow.partners.get(PartnerId(partner_id))
        if partner is None:
            raise fail(errors.NotFound(f"no partner is registered as '{partner_id[:64]}'"))
        shown = partner_public(
            partner, uow.breakers.get(partner.fhir_base), uow.partners.capabilities(partner.id)
        )
    finally:
        platform.close()
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")


@partners_app.command("list")
def partners_list(data_dir: DataDir = None) -> None:
    """List registered partners."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        table = Table("id", "name", "npi", "base_url", "auth", "client id", title="Partners")
        for partner in platform.units.partners().partners.list():
            table.add_row(
                partner.id,
                partner.name,
                partner.npi,
                partner.base_url,
                partner.auth.value,
                partner.client_id or "",
            )
    finally:
        platform.close()
    out.print(table)


@config_app.command("show")
def config_show(data_dir: DataDir = None) -> None:
    """Print the effective configuration (secrets redacted) as JSON."""
    sys.stdout.write(
        orjson.dumps(redacted(settings_for(data_dir)), option=orjson.OPT_INDENT_2).decode() + "\n"
    )


def main(args: list[str] | None = None) -> None:
    """The command line (``payerbridge``, ``python -m payerbridge``). An error of ours
    that reaches here, a setting no command can be built with (a file it names that
    cannot be used), is told with its reason and runbook, not as a traceback."""
    try:
        app(args=args, prog_name="payerbridge")
    except errors.PayerBridgeError as exc:
        sys.exit(fail(exc).exit_code)


from payerbridge.cli import consents as _consents  # noqa: E402
from payerbridge.cli import security as _security  # noqa: E402
from payerbridge.cli.alerts import alerts_app  # noqa: E402
from payerbridge.cli.attribution import attribution_app, opt_outs_app  # noqa: E402
from payerbridge.cli.audit import audit_app  # noqa: E402
from payerbridge.cli.compliance import compliance_app  # noqa: E402
from payerbridge.cli.identity import identity_app  # noqa: E402
from payerbridge.cli.members import members_app, retention_app  # noqa: E402
from payerbridge.cli.onboard import onboard  # noqa: E402
from payerbridge.cli.operators import operators_app  # noqa: E402
from payerbridge.cli.partner_directory import add_partner_directory_commands  # noqa: E402
from payerbridge.cli.partner_discovery import add_partner_discovery_command  # noqa: E402
from payerbridge.cli.partner_health import add_partner_health_commands  # noqa: E402
from payerbridge.cli.partner_operations import add_partner_operations_command  # noqa: E402
from payerbridge.cli.plugins import add_plugin_commands  # noqa: E402
from payerbridge.cli.pulls import pulls_app  # noqa: E402
from payerbridge.cli.quarantine import quarantine_app  # noqa: E402
from payerbridge.cli.reviews import reviews_app  # noqa: E402
from payerbridge.cli.sources import mappings_app, sources_app  # noqa: E402

app.add_typer(_security.clients_app, name="clients")
app.add_typer(_security.token_app, name="token")
app.add_typer(_security.keys_app, name="keys")
app.add_typer(_consents.consents_app, name="consents")
identity_app.add_typer(reviews_app, name="reviews")
app.add_typer(identity_app, name="identity")
app.add_typer(audit_app, name="audit")
app.add_typer(sources_app, name="sources")
app.add_typer(mappings_app, name="mappings")
app.add_typer(quarantine_app, name="quarantine")
add_partner_operations_command(partners_app)
add_partner_health_commands(partners_app)
add_partner_discovery_command(partners_app)
add_partner_directory_commands(partners_app)
app.add_typer(operators_app, name="operators")
app.add_typer(members_app, name="members")
app.add_typer(retention_app, name="retention")
app.add_typer(compliance_app, name="compliance")
app.add_typer(pulls_app, name="pulls")
app.add_typer(attribution_app, name="attribution")
app.add_typer(opt_outs_app, name="opt-outs")
app.add_typer(alerts_app, name="alerts")
app.command("onboard")(onboard)
# bench, demo and sandbox: from payerbridge_tools, when the bench extra is installed.
add_plugin_commands(app)
