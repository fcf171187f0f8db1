"""``payerbridge partners import|proposals|approve|reject``: partners from a directory
bundle (ADR 0062), by the same use cases as ``POST /partners/$import`` and
``/partners/proposals``, audited with the operating-system user as the actor."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.table import Column, Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail, opened_platform, out
from payerbridge.cli.options import DataDir
from payerbridge.routing.unit import DirectoryUnit

__all__ = ["add_partner_directory_commands"]

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
NoteOption = Annotated[str | None, typer.Option(help="Why, kept with the decision.")]
MAX_BUNDLE_BYTES = 50 * 1024 * 1024  # a national directory's payers, with room to spare


def add_partner_directory_commands(partners_app: typer.Typer) -> None:
    partners_app.command("import")(partners_import)
    partners_app.command("proposals")(partners_proposals)
    partners_app.command("approve")(partners_approve)
    partners_app.command("reject")(partners_reject)


def _on_directory(data_dir: Path | None, use: Callable[[DirectoryUnit], T]) -> T:
    """Run ``use`` on the directory's unit; a refusal is printed with its reasons."""
    try:
        with opened_platform(data_dir) as platform:
            return use(platform.units.directory())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc


def _print_json(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


def _bundle(file: Path) -> Any:
    try:
        if file.stat().st_size > MAX_BUNDLE_BYTES:
            raise fail(errors.PayloadTooLarge(f"{file.name} is over {MAX_BUNDLE_BYTES} bytes"))
        return orjson.loads(file.read_bytes())
    except OSError as exc:
        raise fail(errors.InvalidInput(f"{file} cannot be read: {exc.strerror}")) from exc
    except orjson.JSONDecodeError as exc:
        raise fail(errors.MalformedContent(f"{file.name} is not JSON: {exc}")) from exc


def partners_import(
    file: Annotated[Path, typer.Argument(help="An NDH / PDex mTLS directory Bundle (JSON).")],
    as_json: JsonOption = False,
    data_dir: DataDir = None,
) -> None:
    """Import a directory bundle: endpoint changes apply at once; new partners, other
    NPIs and UDAP changes wait for `partners approve`."""
    from payerbridge.clock import utcnow
    from payerbridge.routing.directory_import import ImportDirectory, import_directory

    document = _bundle(file)
    command = ImportDirectory(document, file.name, utcnow(), cli_actor())
    done = _on_directory(data_dir, lambda uow: import_directory(command, uow))
    if as_json:
        _print_json(done.to_json())
        return
    proposal = Column("proposal", no_wrap=True, min_width=36)  # what `partners approve` takes
    table = Table("partner", "outcome", "why / changes", proposal, title=done.directory)
    for result in done.organizations:
        said = "; ".join([*([result.why] if result.why else []), *result.changes])
        table.add_row(result.partner_id or result.entry, result.outcome, said, result.proposal_id)
    out.print(table)
    out.print(f"{done.not_ours} entries of other use cases or organizations passed over")
    for issue in done.issues:
        out.print(f"[yellow]issue[/yellow] {issue.expression}: {issue.text}")


def partners_proposals(
    every: Annotated[bool, typer.Option("--all", help="Settled ones too.")] = False,
    as_json: JsonOption = False,
    data_dir: DataDir = None,
) -> None:
    """List what directory imports hold for an operator (pending ones, newest first)."""
    from payerbridge.routing.ports import ProposalStatus

    status = None if every else ProposalStatus.PENDING
    proposals = _on_directory(data_dir, lambda uow: uow.proposals.list(status))
    if as_json:
        _print_json([p.to_json() for p in proposals])
        return
    shown = Column("id", no_wrap=True, min_width=36)  # what `partners approve` takes
    table = Table(shown, "partner", "npi", "directory", "status", "why", title="Proposals")
    for p in proposals:
        organization = p.organization
        table.add_row(
            p.id, p.partner_id, organization.npi, p.directory, p.status.value, "; ".join(p.reasons)
        )
    out.print(table)


def partners_approve(
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id.")],
    client_id: Annotated[
        str | None,
        typer.Option(
            help="Our client id at the partner's authorization server (SMART), which the "
            "directory does not say; unset: none, or UDAP's registration."
        ),
    ] = None,
    note: NoteOption = None,
    data_dir: DataDir = None,
) -> None:
    """Approve a proposal: the partner is registered (read, and registered with for
    UDAP) as `partners add` would; a stale one is refused."""
    from payerbridge.routing.directory_proposals import SettleProposal, approve_proposal

    command = SettleProposal(proposal_id, cli_actor(), client_id=client_id, note=note)
    enrolled = _on_directory(data_dir, lambda uow: approve_proposal(command, uow))
    verb = "registered" if enrolled.created else "updated"
    out.print(f"partner '{enrolled.partner.id}' {verb} ({enrolled.partner.auth.value})")
    if enrolled.unread is not None:
        out.print(f"[yellow]capabilities not read:[/yellow] {enrolled.unread}")


def partners_reject(
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id.")],
    note: NoteOption = None,
    data_dir: DataDir = None,
) -> None:
    """Reject a proposal: the partner stays as it is; the same entry is not proposed
    again."""
    from payerbridge.routing.directory_proposals import SettleProposal, reject_proposal

    command = SettleProposal(proposal_id, cli_actor(), note=note)
    rejected = _on_directory(data_dir, lambda uow: reject_proposal(command, uow))
    out.print(f"proposal {rejected.id} for '{rejected.partner_id}' rejected")
