"""What every command shares: the consoles, the settings, and errors as exit codes.

Errors from the payerbridge tree become a one-line message on stderr, with the error's
reason code and the address of its runbook, and an exit code (2 invalid input or a data
key that cannot be used, 3 not found, 4 conflict, stale or unprocessable, 5 partner, 1
other; ``audit verify`` exits 6 when the audit chain does not hold).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from payerbridge import errors
from payerbridge.config import Settings, load_settings
from payerbridge.fhir.reasons import link_runbooks_to, runbook_url

if TYPE_CHECKING:
    from payerbridge.bootstrap import Platform

__all__ = ["cli_actor", "err", "fail", "opened_platform", "out", "settings_for"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def cli_actor() -> str:
    """Who the audit trail names for a command: the operating-system user."""
    return f"cli:{getpass.getuser()}"


_EXIT_CODES: tuple[tuple[type[errors.PayerBridgeError], int], ...] = (
    (errors.InvalidInput, 2),
    (errors.NotFound, 3),
    (errors.Conflict, 4),
    (errors.PreconditionFailed, 4),  # changed since the version the command named
    (errors.UnprocessableRequest, 4),
    (errors.PartnerError, 5),
    (errors.Forbidden, 7),  # not this principal's to do (a hold another placed)
    (errors.DataKeyUnavailable, 2),  # the key-encryption key file: a setting to fix
)


def fail(error: errors.PayerBridgeError) -> typer.Exit:
    err.print(f"[red]error:[/red] {error.text}")
    for issue in error.issues:
        if issue.text != error.text:
            where = f" ({issue.expression})" if issue.expression else ""
            err.print(f"  - {issue.text}{where}")
    err.print(f"  reason: {error.reason_code}; runbook: {runbook_url(error.reason_code)}")
    code = next((c for cls, c in _EXIT_CODES if isinstance(error, cls)), 1)
    return typer.Exit(code)


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(data_dir=data_dir, **overrides)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    link_runbooks_to(settings.runbook_template)  # what fail() prints
    return settings


@contextmanager
def opened_platform(data_dir: Path | None) -> Iterator[Platform]:
    """The platform on ``data_dir`` for one command, closed however the command ends
    (bootstrap imported here, not at the CLI's start: ``--help`` stays quick)."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        yield platform
    finally:
        platform.close()
