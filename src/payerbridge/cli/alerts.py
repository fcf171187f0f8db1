"""``payerbridge alerts rules``: the shipped Prometheus rules, each alert's runbook_url
pointed at this deployment's runbook pages (``metrics.alert_rules``), for Prometheus's
``rule_files:``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from payerbridge import errors
from payerbridge.cli.console import err, fail, settings_for
from payerbridge.cli.options import DataDir

__all__ = ["alerts_app"]

alerts_app = typer.Typer(no_args_is_help=True, help="The Prometheus alert rules.")


@alerts_app.command("rules")
def alerts_rules(
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="The shipped rules file (default: deploy/prometheus/alerts.yml of the "
            "source tree this runs from).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Print the alert rules with each runbook_url absolute, at PAYERBRIDGE_RUNBOOK_URL,
    else PAYERBRIDGE_RUNBOOK_BASE_URL, else this deployment's public base URL's
    /runbooks (without one: the project's pages)."""
    from payerbridge.metrics.alert_rules import (
        alert_runbook_template,
        default_rules_file,
        render_rules,
    )

    settings = settings_for(data_dir)
    source = rules or default_rules_file()
    try:
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise errors.InvalidInput(
                f"the alert rules cannot be read at {source} ({exc.strerror}): name the "
                "release's deploy/prometheus/alerts.yml with --rules"
            ) from exc
        rendered = render_rules(text, alert_runbook_template(settings))
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    if output is None:
        sys.stdout.write(rendered)
        return
    output.write_text(rendered, encoding="utf-8")
    err.print(f"alert rules written to {output}")
