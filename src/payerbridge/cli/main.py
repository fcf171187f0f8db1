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
from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry
from payerbridge.transactions import Transactions
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
    from payerbridge.exchange.interventions import replay
    from payerbridge.workflows.exchange import enqueue_exchange

    settings = settings_for(data_dir, worker_id=f"cli-{uuid.uuid4().hex[:8]}")
    platform = build_platform(settings)
    launch_workflows(platform, work=False)
    try:
        replay(
            platform.exchange_ports,
            ExchangeId(exchange_id),
            actor=cli_actor(),
            replay_key=None,
        )
        record = platform.exchanges.get(ExchangeId(exchange_id))
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
    from payerbridge.exchange.interventions import cancel

    platform = build_platform(settings_for(data_dir))
    try:
        cancel(platform.exchange_ports, ExchangeId(exchange_id), actor=cli_actor(), note=note)
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
    data_dir: DataDir = None,
) -> None:
    """Register (or update) a partner payer; a changed endpoint is checked first, and a
    UDAP partner is registered with."""
    from payerbridge.routing.enrolment import enrol_partner
    from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, Partner

    partner = Partner(
        PartnerId(partner_id),
        name,
        npi,
        base_url,
        client_id=client_id,
        token_url=token_url,
        scope=scope or DEFAULT_PARTNER_SCOPE,
        auth=auth or PartnerAuth.NONE,
    )
    enrolled = _with_directory(
        data_dir,
        lambda registry, discovery, transactions: enrol_partner(
            partner,
            registry=registry,
            discovery=discovery,
            transactions=transactions,
            actor=cli_actor(),
            request_id=None,
        ),
    )
    verb = "registered" if enrolled.created else "updated"
    out.print(f"partner '{partner_id}' {verb} ({enrolled.partner.auth.value})")
    if enrolled.capabilities is not None:
        out.print(_capability_line(enrolled.capabilities))
    elif enrolled.unread is not None:
        out.print(f"[yellow]capabilities not read:[/yellow] {enrolled.unread}")
        out.print(f"read them later with: payerbridge partners refresh {partner_id}")


def _with_directory(
    data_dir: Path | None, use: Callable[[PartnerRegistry, PartnerDiscovery, Transactions], T]
) -> T:
    """Run ``use(directory, discovery, transactions)`` on the partner directory; a
    refusal is printed with its reasons."""
    from payerbridge.bootstrap import build_platform

    try:
        platform = build_platform(settings_for(data_dir))
        try:
            return use(platform.partners, platform.discovery, platform.transactions)
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
    from payerbridge.routing.enrolment import refresh_partner

    refreshed = _with_directory(
        data_dir,
        lambda registry, discovery, transactions: refresh_partner(
            PartnerId(partner_id),
            registry=registry,
            discovery=discovery,
            transactions=transactions,
            actor=cli_actor(),
            request_id=None,
        ),
    )
    out.print(_capability_line(refreshed.capabilities))
    for change in refreshed.changes or ["no change"]:
        out.print(f"  - {change}")


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
        partner = platform.partners.get(PartnerId(partner_id))
        if partner is None:
            raise fail(errors.NotFound(f"no partner is registered as '{partner_id[:64]}'"))
        shown = partner_public(
            partner,
            platform.breakers.get(partner.fhir_base),
            platform.partners.capabilities(partner.id),
        )
    finally:
        platform.close()
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")


@partners_app.command("operations")
def partners_operations(
    partner_id: Annotated[str, typer.Argument(help="The partner's id.")],
    suspend: Annotated[
        str | None,
        typer.Option(help="Suspend exchanges with it; the text is shown as the reason."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Take exchanges again.")] = False,
    maintenance: Annotated[
        list[str] | None,
        typer.Option(
            help="A maintenance window 'START/END=reason' (instants with offsets), or "
            "weekly 'sun 02:00-04:00 America/New_York=reason'; repeatable; replaces the "
            "windows set before."
        ),
    ] = None,
    no_maintenance: Annotated[
        bool, typer.Option("--no-maintenance", help="Clear its maintenance windows.")
    ] = False,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            help="The calls it takes, 'N/SECONDS' (e.g. 120/60), shared by every worker; "
            "'none' clears it."
        ),
    ] = None,
    exchange_budget: Annotated[
        str | None,
        typer.Option(
            help="How long an exchange with it keeps trying from its submission before it "
            "is dead-lettered (deadline-exceeded): seconds, or with a unit (90m, 36h, 7d); "
            "'default' for the platform's (the rule's clocks)."
        ),
    ] = None,
    contact: Annotated[
        list[str] | None,
        typer.Option(
            help="Whom to call about it, 'NAME;EMAIL;PHONE' (email or phone may be left "
            "empty); repeatable; replaces the contacts set before."
        ),
    ] = None,
    no_contacts: Annotated[bool, typer.Option("--no-contacts", help="Clear its contacts.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Suspend or resume a partner, set its maintenance windows (new exchanges wait
    for a window to end), its rate, its exchanges' time budget or its contacts; prints
    how it is now run."""
    from payerbridge.routing.enrolment import registered, set_operations

    if suspend is not None and resume:
        raise fail(errors.InvalidInput("give --suspend or --resume, not both"))

    def change(
        registry: PartnerRegistry, _discovery: PartnerDiscovery, transactions: Transactions
    ) -> Any:
        document = registered(registry, PartnerId(partner_id)).operations.to_json()
        if suspend is not None:
            document |= {"status": "suspended", "note": suspend}
        if resume:
            document |= {"status": "active", "note": None}
        if no_maintenance:
            document["maintenance"] = []
        if maintenance:
            document["maintenance"] = [_window_option(text) for text in maintenance]
        if rate_limit is not None:
            document["rate_limit"] = _rate_option(rate_limit)
        if exchange_budget is not None:
            document["exchange_budget_seconds"] = _budget_option(exchange_budget)
        if no_contacts:
            document["contacts"] = []
        if contact:
            document["contacts"] = [_contact_option(text) for text in contact]
        return set_operations(
            PartnerId(partner_id),
            document,
            registry=registry,
            transactions=transactions,
            actor=cli_actor(),
            request_id=None,
        )

    partner = _with_directory(data_dir, change)
    sys.stdout.write(
        orjson.dumps(partner.operations.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    )


def _rate_option(text: str) -> Any:
    """'N/SECONDS' as the API's rate_limit document (checked there); 'none' clears it."""
    if text.strip().lower() == "none":
        return None
    requests, _, seconds = text.partition("/")
    try:
        return {"requests": int(requests), "per_seconds": float(seconds)}
    except ValueError:
        return text  # refused by the check, which names the form


def _contact_option(text: str) -> dict[str, str | None]:
    """'NAME;EMAIL;PHONE' as the API's contact (checked there, which names what is
    missing or malformed)."""
    parts = text.split(";")
    if len(parts) > 3:
        raise fail(errors.InvalidInput(f"a contact is 'NAME;EMAIL;PHONE', not {len(parts)} fields"))
    name, email, phone = [*parts, "", ""][:3]
    return {k: v.strip() or None for k, v in (("name", name), ("email", email), ("phone", phone))}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _budget_option(text: str) -> Any:
    """'default' (None), or seconds with an optional unit, as the API's budget (checked
    there, which names the range)."""
    value = text.strip().lower()
    if value == "default":
        return None
    unit = _UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    try:
        return float(number) * (unit or 1)
    except ValueError:
        return text  # refused by the check, which names the form


def _window_option(text: str) -> dict[str, Any]:
    """'START/END=reason' or 'DAY HH:MM-HH:MM ZONE=reason' as the API's window document
    (checked there, with the other fields)."""
    when, _, reason = text.partition("=")
    parts = when.split()
    if len(parts) == 3 and "-" in parts[1]:
        start, _, end = parts[1].partition("-")
        return {
            "weekly": parts[0].lower(),
            "start": start,
            "end": end,
            "zone": parts[2],
            "reason": reason,
        }
    start, _, end = when.partition("/")
    return {"start": start, "end": end, "reason": reason}


@partners_app.command("list")
def partners_list(data_dir: DataDir = None) -> None:
    """List registered partners."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        table = Table("id", "name", "npi", "base_url", "auth", "client id", title="Partners")
        for partner in platform.partners.list():
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
from payerbridge.cli.audit import audit_app  # noqa: E402
from payerbridge.cli.compliance import compliance_app  # noqa: E402
from payerbridge.cli.identity import identity_app  # noqa: E402
from payerbridge.cli.members import members_app, retention_app  # noqa: E402
from payerbridge.cli.onboard import onboard  # noqa: E402
from payerbridge.cli.operators import operators_app  # noqa: E402
from payerbridge.cli.partner_health import add_partner_health_commands  # noqa: E402
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
add_partner_health_commands(partners_app)
app.add_typer(operators_app, name="operators")
app.add_typer(members_app, name="members")
app.add_typer(retention_app, name="retention")
app.add_typer(compliance_app, name="compliance")
app.add_typer(pulls_app, name="pulls")
app.add_typer(alerts_app, name="alerts")
app.command("onboard")(onboard)
# bench, demo and sandbox: from payerbridge_tools, when the bench extra is installed.
add_plugin_commands(app)
