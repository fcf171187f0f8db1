"""``payerbridge members …`` and ``payerbridge retention …``: legal holds, a member's
erasure, and the purge of what is past its retention (ADR 0038)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from payerbridge.cli.console import cli_actor
from payerbridge.cli.options import DataDir
from payerbridge.compliance.lifecycle import Acting

__all__ = ["members_app", "retention_app"]

members_app = typer.Typer(no_args_is_help=True, help="Members' legal holds and erasure.")
retention_app = typer.Typer(no_args_is_help=True, help="What each table keeps, and the purge.")
out = Console()

Reason = Annotated[str, typer.Option(help="Why (for the audit trail; no member data).")]
By = Annotated[
    str | None,
    typer.Option(help="The person acting, recorded beside the OS user (who is the principal)."),
]


def _acting(by: str | None) -> Acting:
    """The CLI acts as the operating-system user; ``--by`` names a person beside it."""
    return Acting(cli_actor(), by)


@members_app.command("hold")
def members_hold(
    member_id: Annotated[str, typer.Argument(help="Our Patient id of the member.")],
    reason: Reason,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Place a legal hold on a member: their erasure is refused until it is released."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.compliance.lifecycle import PlaceHold, place_hold

    with opened_platform(data_dir) as platform:
        hold = place_hold(PlaceHold(member_id, _acting(by), reason), platform.units.compliance())
    typer.echo(hold.id)


@members_app.command("release")
def members_release(
    hold_id: Annotated[str, typer.Argument(help="The hold's id.")],
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Release a legal hold: only the principal that placed it (here the OS user) or
    counsel (PAYERBRIDGE_HOLD_COUNSEL) may."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.compliance.lifecycle import ReleaseHold, release_hold

    with opened_platform(data_dir) as platform:
        hold = release_hold(ReleaseHold(hold_id, _acting(by)), platform.units.compliance())
    typer.echo(f"released {hold.id} (member {hold.member_id})")


@members_app.command("holds")
def members_holds(
    member_id: Annotated[str, typer.Argument(help="Our Patient id of the member.")],
    data_dir: DataDir = None,
) -> None:
    """List a member's legal holds, released ones too."""
    from payerbridge.cli.console import opened_platform

    with opened_platform(data_dir) as platform, platform.units.compliance() as uow:
        holds = uow.lifecycle.holds(uow, member_id)
    table = Table("hold", "placed", "by", "reason", "released")
    for hold in holds:
        released = (
            f"{hold.released_at:%Y-%m-%d %H:%M} by {hold.released_by}" if hold.released_at else ""
        )
        table.add_row(
            hold.id, f"{hold.placed_at:%Y-%m-%d %H:%M}", hold.placed_by, hold.reason, released
        )
    out.print(table)


@members_app.command("erase")
def members_erase(
    member_id: Annotated[str, typer.Argument(help="Our Patient id of the member.")],
    reason: Reason,
    by: By = None,
    data_dir: DataDir = None,
) -> None:
    """Erase a member's PHI from every table (refused under a legal hold); prints what
    was removed, by table. The audit trail keeps that record, without the PHI."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.compliance.lifecycle import EraseMember, erase_member

    with opened_platform(data_dir) as platform:
        command = EraseMember(member_id, _acting(by).label, reason)
        removed = erase_member(command, platform.units.compliance())
    typer.echo(orjson.dumps(dict(removed), option=orjson.OPT_INDENT_2).decode())


@retention_app.command("classes")
def retention_classes() -> None:
    """Every table's retention class and the columns of it that hold PHI."""
    from payerbridge.compliance.model import CATALOGUE

    table = Table("table", "class", "PHI columns", "what")
    for name, entry in sorted(CATALOGUE.items()):
        table.add_row(name, entry.retention.value, ", ".join(entry.phi), entry.why)
    out.print(table)


@retention_app.command("purge")
def retention_purge(data_dir: DataDir = None) -> None:
    """Apply the retention classes now (the upkeep sweep does it on its own); prints
    what went."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.compliance.lifecycle import Purge, purge

    with opened_platform(data_dir) as platform:
        purged = purge(Purge(), platform.units.compliance())
    typer.echo(orjson.dumps(purged.counts()).decode())
