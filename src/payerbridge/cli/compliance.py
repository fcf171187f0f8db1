"""``payerbridge compliance report``: per obligation and duty (ours apart from partners'
answer times we observed), the rows met, missed, at risk, pending and closed in a
window, with the reasons and the subjects behind each, the plan's identity and each
rule's citation and confirmation status (ADR 0037), as a table, JSON or CSV."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from payerbridge import errors
from payerbridge.cli.console import fail, settings_for
from payerbridge.cli.options import DataDir

__all__ = ["compliance_app"]

compliance_app = typer.Typer(no_args_is_help=True, help="The rule's clocks: the report.")
SHAPES = ("table", "json", "csv")


@compliance_app.command("report")
def compliance_report_command(
    first: Annotated[
        str | None,
        typer.Option("--from", help="First day (YYYY-MM-DD, the plan's zone), included."),
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD), not included.")
    ] = None,
    shape: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    subjects: Annotated[
        str | None,
        typer.Option(
            "--subjects",
            help="json: how many subjects each list of met rows shows (default 100, at most "
            "10000); those missed, at risk and pending are all shown.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Every obligation row started from --from to --to (at most 366 days), where each
    stands now: counts per obligation, the reasons, the exchanges and cases behind them
    (csv: every row, written as it is read)."""
    from payerbridge.bootstrap import build_platform, utcnow
    from payerbridge.compliance.report import (
        compliance_report,
        report_csv,
        report_json,
        report_table,
        report_window,
        subjects_limit,
    )
    from payerbridge.policies import compliance_obligations, compliance_plan

    settings = settings_for(data_dir)
    try:
        if shape not in SHAPES:
            text = f"--format: one of {', '.join(SHAPES)} (got '{shape[:20]}')"
            raise errors.InvalidInput(text)
        zone = compliance_obligations(settings).calendar.zone
        window = report_window(first, last, zone)
        limit = subjects_limit(subjects, "--subjects")
    except errors.PayerBridgeError as exc:
        raise fail(exc) from None
    platform = build_platform(settings)
    try:
        uow = platform.units.compliance()
        reader, obligations, now = uow.clock_reader, uow.obligations, utcnow()
        plan = compliance_plan(settings)
        if shape == "csv":
            for chunk in report_csv(window, reader, obligations, now, plan=plan):
                typer.echo(chunk, nl=False)
            return
        # The table shows the rows missed and at risk: no met subjects to read for it.
        listed = limit if shape == "json" else 0
        found = compliance_report(window, reader, obligations, now, subjects=listed, plan=plan)
    finally:
        platform.close()
    if shape == "json":
        typer.echo(orjson.dumps(report_json(found), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(report_table(found), nl=False)
