"""``payerbridge pulls …``: standing pulls of a member's data at an old payer, each an
exchange asked ``since`` the last successful one (ADR 0040)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import orjson
import typer

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail
from payerbridge.cli.options import DataDir

__all__ = ["pulls_app"]

pulls_app = typer.Typer(no_args_is_help=True, help="Standing pulls: first, quarterly and run-off.")


def _json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _coverage_end(text: str | None) -> datetime | None:
    """``--coverage-end`` as the instant a schedule keeps; a bad date exits 2, naming it."""
    from payerbridge.exchange.pulls.model import coverage_ends

    try:
        return coverage_ends(date.fromisoformat(text) if text else None)
    except ValueError as exc:
        raise fail(errors.InvalidInput(f"--coverage-end must be a date: {exc}")) from exc


@pulls_app.command("schedule")
def pulls_schedule(
    exchange: Annotated[str, typer.Option(help="The member's last successful exchange.")],
    coverage_end: Annotated[
        str | None,
        typer.Option(
            help="The day the member's coverage at the old payer ends or ended "
            "(YYYY-MM-DD); unset: it goes on, and the pulls are quarterly."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Pull the member an exchange moved again, from it on: quarterly while coverage at
    the old payer goes on, run-off after it ends, until the opt-in's period ends. Refused
    without a current opt-in (with the consent's reason). A member's first request is
    scheduled by their client: POST /pull-schedules."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.exchange.pulls.schedules import pull_schedules_public, schedule_pull
    from payerbridge.types import ExchangeId

    ended = _coverage_end(coverage_end)
    with opened_platform(data_dir) as platform:
        try:
            schedule = schedule_pull(
                platform.units.exchange(),
                ExchangeId(exchange),
                actor=cli_actor(),
                coverage_end=ended,
            )
        except errors.PayerBridgeError as exc:
            raise fail(exc) from exc
    _json(pull_schedules_public([schedule])[0])


@pulls_app.command("list")
def pulls_list(
    active: Annotated[bool, typer.Option(help="Only the schedules still running.")] = False,
    data_dir: DataDir = None,
) -> None:
    """The schedules as JSON (ids and times, no member data)."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.exchange.model import PullStatus
    from payerbridge.exchange.pulls.schedules import pull_schedules_public

    with opened_platform(data_dir) as platform:
        schedules = platform.units.exchange().pulls.all(
            status=PullStatus.ACTIVE if active else None
        )
    _json(pull_schedules_public(schedules))


@pulls_app.command("cancel")
def pulls_cancel(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    data_dir: DataDir = None,
) -> None:
    """Stop a schedule (``cancelled``); the request it kept is cut."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.exchange.pulls.schedules import cancel_pull, pull_schedules_public

    with opened_platform(data_dir) as platform:
        try:
            schedule = cancel_pull(platform.units.exchange(), schedule_id, actor=cli_actor())
        except errors.PayerBridgeError as exc:
            raise fail(exc) from exc
    _json(pull_schedules_public([schedule])[0])


@pulls_app.command("update")
def pulls_update(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    coverage_end: Annotated[
        str,
        typer.Option(help="The day the member's coverage at the old payer ends (YYYY-MM-DD)."),
    ],
    data_dir: DataDir = None,
) -> None:
    """The day coverage at the old payer ends, learned after scheduling: the periods after
    the one owed now follow it (run-off from its end)."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.exchange.pulls.schedules import end_coverage, pull_schedules_public

    ended = _coverage_end(coverage_end)
    assert ended is not None  # a required option
    with opened_platform(data_dir) as platform:
        try:
            schedule = end_coverage(
                platform.units.exchange(),
                schedule_id,
                ended,
                actor=cli_actor(),
            )
        except errors.PayerBridgeError as exc:
            raise fail(exc) from exc
    _json(pull_schedules_public([schedule])[0])


@pulls_app.command("run")
def pulls_run(data_dir: DataDir = None) -> None:
    """Start the pulls due now, as the upkeep sweep does (a worker enqueues them)."""
    from payerbridge.bootstrap import utcnow
    from payerbridge.cli.console import opened_platform
    from payerbridge.exchange.pulls.schedules import start_due_pulls

    with opened_platform(data_dir) as platform:
        run = start_due_pulls(platform.units.exchange(), utcnow())
    _json(
        {
            "started": list(run.started),
            "stopped": [list(s) for s in run.stopped],
            "waiting": run.waiting,
        }
    )
