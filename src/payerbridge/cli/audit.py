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
    witness: Annotated[
        Path | None,
        typer.Option(
            help="The witness's checkpoint file, kept outside the data dir (default: the "
            "configured PAYERBRIDGE_AUDIT_WITNESS)."
        ),
    ] = None,
    against: Annotated[
        list[str] | None,
        typer.Option(
            "--against",
            metavar="CHECKPOINT",
            help="A checkpoint held elsewhere (its JSON line, or a file of checkpoints): "
            "prove the chain still extends it (RFC 9162 consistency). Repeatable.",
        ),
    ] = None,
) -> None:
    """Check every audit event's hash and link and every signed checkpoint (the local
    file's and the witness's); name the first bad event, and the checkpoints the witness
    holds that the local file lost. Exit status 0 only when all of it holds."""
    from payerbridge.bootstrap import build_platform, verify_audit_chain

    platform = build_platform(settings_for(data_dir), run_migrations=False)
    try:
        report = verify_audit_chain(
            platform,
            checkpoints=checkpoints,
            public_key=public_key,
            witness=witness,
            against=against or (),
        )
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
    if report.signed_up_to < report.events:
        out.print(
            f"events {report.signed_up_to + 1}..{report.events} are not under a signed "
            "checkpoint yet (the next scheduled one signs them)"
        )
    if report.witnessed:
        out.print(f"{report.witnessed} witnessed checkpoints read")
    elif not report.proven:
        out.print(
            "note: no witnessed checkpoint read: events cut after the newest checkpoint in "
            "the data dir would go unnoticed (set PAYERBRIDGE_AUDIT_WITNESS, or give --against)"
        )
    for seq in report.proven:
        out.print(
            f"the chain of {report.events} events extends the witnessed checkpoint at {seq} "
            "(RFC 9162 consistency proof holds)"
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
