"""``payerbridge onboard``: plan-year onboarding of a file of new members at one old payer,
run durably in this process (a DBOS worker), with progress bars and a report; with
``--since``, an incremental one (only what changed after an instant, or after the last
completed onboarding with the partner: ``--since last``)."""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from payerbridge.cli.console import err, fail, out, settings_for
from payerbridge.cli.options import DataDir
from payerbridge.errors import InvalidInput, Issue, PayerBridgeError

if TYPE_CHECKING:
    from payerbridge.bootstrap import Platform
    from payerbridge.exchange.model import ExchangeRequest
    from payerbridge.onboarding.increments import SinceAsked
    from payerbridge.onboarding.model import Onboarding
    from payerbridge.onboarding.ports import OnboardingStore

__all__ = ["onboard"]

_POLL_SECONDS = 0.5


def onboard(
    partner: Annotated[str, typer.Option(help="The old payer, by its registered partner id.")],
    members: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="NDJSON: one member per line, as POST /exchanges takes one (member, "
            "old_coverage, new_coverage, consent), old_payer left out.",
        ),
    ],
    data_dir: DataDir = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Ask only for what changed after this FHIR instant (2027-01-01T00:00:00Z), "
            "sent as _since on $davinci-data-export; 'last': after what the last completed "
            "onboarding with the partner received (its received_at).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (as GET /onboardings/{id}).")
    ] = False,
) -> None:
    """Match the members at the old payer with $bulk-member-match, export the matched
    members' histories with $davinci-data-export and import them with Provenance.

    The run is durable: stopped or killed, the same command with the same file (and
    --since) carries on where it was. Each member's result and count are in the report
    (and at GET /onboardings/{id})."""
    from payerbridge.api.routers.onboardings import onboarding_report
    from payerbridge.api.schemas import onboarding_requests
    from payerbridge.bootstrap import build_platform, shutdown_workflows
    from payerbridge.onboarding.increments import parse_since
    from payerbridge.onboarding.service import onboarding_id_for
    from payerbridge.types import OPERATOR
    from payerbridge.workflows.onboarding import enqueue_onboarding

    content = members.read_bytes()
    try:
        requests = onboarding_requests(partner, _lines(content))
        asked = parse_since(since, name="--since")
    except PayerBridgeError as exc:
        raise fail(exc) from exc
    # Its own worker id: run again after a crash, this process recovers the run's workflow.
    worker = onboarding_id_for(OPERATOR, _digest(partner, content, since))
    platform = build_platform(settings_for(data_dir, worker_id=f"onboard-{worker[:16]}"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            onboarding = _accepted(platform, partner, content, requests, asked)
        except PayerBridgeError as exc:
            raise fail(exc) from exc
        enqueue_onboarding(onboarding.id, onboarding.partner_id)
        err.print(f"onboarding {onboarding.id}: {onboarding.total} member(s) with '{partner}'")
        uow = platform.units.onboarding()
        store = uow.onboardings
        _watch(store, onboarding, stop)
        report = onboarding_report(uow, store.get(onboarding.id) or onboarding)
    finally:
        shutdown_workflows(platform)
    if stop.is_set() and report["status"] == "running":
        err.print(f"stopped; run the same command again to carry on ({report['id']})")
        raise typer.Exit(130)
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        _print(report)
    if report["status"] != "completed":
        raise typer.Exit(1)


def _accepted(
    platform: Platform,
    partner: str,
    content: bytes,
    requests: Sequence[ExchangeRequest],
    asked: SinceAsked,
) -> Onboarding:
    """The run of this file (and since), accepted, or as it stands if it was; the
    platform's workflows launched. ``last`` is read before they are: a run they recover
    must not move it meanwhile, so that the same command names the same run."""
    from payerbridge.bootstrap import launch_workflows
    from payerbridge.onboarding.increments import since_asked
    from payerbridge.onboarding.model import NewOnboarding
    from payerbridge.onboarding.service import accept_onboarding, onboarding_id_for
    from payerbridge.types import OPERATOR, PartnerId

    uow = platform.units.onboarding()
    since = since_asked(uow.onboardings, OPERATOR, PartnerId(partner), asked)
    asked_text = since.isoformat() if since else None
    run_id = onboarding_id_for(OPERATOR, _digest(partner, content, asked_text))
    launch_workflows(platform, work=True)
    return accept_onboarding(
        NewOnboarding(
            run_id, PartnerId(partner), requests, client_id=OPERATOR, request_id=None, since=since
        ),
        uow,
    )


def _digest(partner: str, content: bytes, since: str | None) -> str:
    """What names a run: the partner, the file and what it asks since (none: as before
    there was --since, so a run started then is carried on)."""
    asked = b"" if since is None else b"\nsince " + since.encode()
    return hashlib.sha256(partner.encode() + b"\n" + content + asked).hexdigest()


def _watch(store: OnboardingStore, onboarding: Onboarding, stop: threading.Event) -> None:
    """Progress bars of the run (members matched, chunks imported) until it ends or a
    signal asks this process to stop."""
    from payerbridge.onboarding.model import OnboardingStatus

    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        matched = progress.add_task("matched", total=onboarding.total)
        imported = progress.add_task("chunks", total=onboarding.chunks)
        while not stop.is_set():
            current = store.get(onboarding.id)
            done = store.members(onboarding.id)
            progress.update(matched, completed=sum(1 for m in done if m.result))
            progress.update(
                imported,
                completed=sum(1 for c in store.chunks(onboarding.id) if c.stage == "done"),
            )
            if current is None or current.status is not OnboardingStatus.RUNNING:
                break
            stop.wait(_POLL_SECONDS)


def _lines(content: bytes) -> list[Any]:
    """The file's members; InvalidInput naming every line that is not JSON."""
    parsed: list[Any] = []
    issues: list[Issue] = []
    for number, line in enumerate(content.rstrip().splitlines(), start=1):
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            issues.append(Issue(f"line {number}: not JSON ({exc.msg})", f"line {number}"))
    if issues:
        raise InvalidInput("the members file is not NDJSON", issues=issues)
    return parsed


def _print(report: dict[str, Any]) -> None:
    table = Table(title=f"onboarding {report['id']} with {report['partner']}: {report['status']}")
    table.add_column("members")
    table.add_column("count", justify="right")
    for name, count in report["results"].items():
        table.add_row(name, str(count))
    table.add_row("imported", str(report["imported_members"]))
    table.add_row("resources imported", str(report["imported_resources"]))
    for how, count in report["member_patients"].items():  # ADR 0054: under whose Patient
        table.add_row(f"kept under the Patient: {how}", str(count))
    table.add_row("sources differ on birth date or gender", str(report["identity_differences"]))
    if report["since"]:
        table.add_row(f"nothing new since {report['since']}", str(report["nothing_new"]))
    out.print(table)
    if report["received_at"]:
        err.print(f"received_at {report['received_at']} (the since of the next: --since last)")
    if report["identity_differences"]:
        err.print(
            f"[yellow]{report['identity_differences']} member(s) whose sources differ on birth "
            "date or gender (maybe another person): look at GET /onboardings/{id}/members "
            "before relying on the merge[/yellow]"
        )
    if report["error"]:
        err.print(f"[red]error:[/red] {report['error']}")
