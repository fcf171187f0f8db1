"""``payerbridge audit``: verify the hash-chained audit trail, sign a checkpoint now, prove
an event (or two checkpoints' consistency) and check such a proof with the public key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from payerbridge import errors
from payerbridge.cli.console import err, fail, out, settings_for
from payerbridge.cli.options import DataDir

if TYPE_CHECKING:
    from payerbridge.audit.proofs import ProofCheck

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


@audit_app.command("prove")
def audit_prove(
    event: Annotated[
        int | None, typer.Option("--event", min=1, help="The event's sequence number.")
    ] = None,
    checkpoint: Annotated[
        int | None,
        typer.Option(min=1, help="The signed checkpoint to prove against (default: the newest)."),
    ] = None,
    consistency: Annotated[
        int | None,
        typer.Option(
            "--consistency",
            min=1,
            metavar="FIRST",
            help="Instead of an event: prove the checkpoint's tree extends checkpoint FIRST's.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a self-contained JSON proof (RFC 9162): the event's stored fields, its leaf
    index, the tree size, the audit path and the signed checkpoint; anyone holding the
    public key checks it with ``payerbridge audit verify-proof``."""
    from payerbridge.audit.proving import prove_consistency, prove_event
    from payerbridge.bootstrap import build_platform

    if (event is None) == (consistency is None):
        raise fail(errors.InvalidInput("give --event SEQ or --consistency FIRST (one of them)"))
    platform = build_platform(settings_for(data_dir), run_migrations=False)
    try:
        reader = platform.units.audit().reader
        if event is not None:
            document = prove_event(reader, event, checkpoint=checkpoint)
        else:
            assert consistency is not None
            document = prove_consistency(reader, consistency, second=checkpoint)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


@audit_app.command("verify-proof")
def audit_verify_proof(
    proof: Annotated[
        Path, typer.Argument(help="The proof (audit prove's, or GET /audit/proofs').")
    ],
    public_key: Annotated[
        Path, typer.Option(help="The audit signing key's public PEM (audit-signing.pub).")
    ],
) -> None:
    """Check a proof with the public key alone (no database, no settings): exit 0 when
    every proof in the file holds, 6 naming the first that does not."""
    try:
        checks = _check_proof_file(proof, public_key)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    if not checks:
        raise fail(errors.InvalidInput(f"{proof} holds no proof (its events are pending?)"))
    for check in checks:
        if not check.holds:
            err.print(f"[red]proof fails:[/red] {check.reason}")
            raise typer.Exit(6)
        out.print(f"proof holds: {check.reason}")


def _check_proof_file(document: Path, public_key: Path) -> list[ProofCheck]:
    """Each proof in ``document`` (one proof, or ``GET /audit/proofs``'s answer) checked
    with the Ed25519 public key in ``public_key`` alone: no settings, no database."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from payerbridge.audit.proofs import verify_document

    try:
        key = load_pem_public_key(public_key.read_bytes())
        found = orjson.loads(document.read_bytes())
    except (OSError, ValueError) as exc:  # orjson's and a PEM's errors are ValueErrors
        raise errors.InvalidInput(f"cannot read the proof or the key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise errors.InvalidInput(f"{public_key} is not an Ed25519 public key")
    if not isinstance(found, dict):
        raise errors.InvalidInput(f"{document} holds no proof document (a JSON object)")
    proofs = [*found.get("proofs", []), found.get("consistency")] if "proofs" in found else [found]
    try:
        return [verify_document(proof, key) for proof in proofs if proof is not None]
    except ValueError as exc:
        raise errors.InvalidInput(f"{document}: {exc}") from exc
