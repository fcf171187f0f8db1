"""``payerbridge audit``: verify the hash-chained audit trail, and sign a checkpoint now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payerbridge import errors
from payerbridge.cli.console import err, fail, out, settings_for
from payerbridge.cli.options import DataDir

__all__ = ["audit_app"]

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="Signed checkpoints file (default: the configured one)."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="PEM key that checks the signatures (default: the signing key's)."),
    ] = None,
) -> None:
    """Check every audit event's hash and link and every signed checkpoint; name the first
    bad event. Exit status 0 only when all of it holds."""
    from payerbridge.bootstrap import build_platform, verify_audit_chain

    platform = build_platform(settings_for(data_dir), run_migrations=False)
    try:
        report = verify_audit_chain(platform, checkpoints=checkpoints, public_key=public_key)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    if report.first_bad is not None:
        err.print(
            f"[red]audit chain broken:[/red] first bad event {report.first_bad.seq}: "
            f"{report.first_bad.reason}"
        )
    for problem in report.problems:
        err.print(f"[red]audit problem:[/red] {problem}")
    if not report.holds:
        raise typer.Exit(6)
    out.print(
        f"audit chain holds: {report.events} events, head {report.chain_head[:16]}, "
        f"{report.checkpoints_checked} signed checkpoints checked"
    )


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None) -> None:
    """Sign a checkpoint of the chain's head now (and any that are due), publish it to
    the configured file or URL."""
    from payerbridge.bootstrap import audit_checkpointer, build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        signed = audit_checkpointer(platform, every_seconds=0)()
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    if not signed:
        out.print("no new audit events since the last checkpoint")
        return
    out.print(f"signed {len(signed)} checkpoint(s), up to event {signed[-1].seq}")
