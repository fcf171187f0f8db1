"""``payerbridge quarantine``: what a source produced that failed a profile it claims,
held with the reasons and never sent (ADR 0030)."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.table import Table

from payerbridge import errors
from payerbridge.backends.model import QuarantineId, SourceId
from payerbridge.cli.console import fail, out, settings_for
from payerbridge.cli.options import DataDir

__all__ = ["quarantine_app"]

quarantine_app = typer.Typer(
    no_args_is_help=True, help="Resources held for failing their profiles (never sent)."
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@quarantine_app.command("list")
def quarantine_list(
    data_dir: DataDir = None,
    source: Annotated[str | None, typer.Option(help="Only this source's.")] = None,
    after: Annotated[
        int | None, typer.Option(help="Only those held after this one (its seq).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    as_json: AsJson = False,
) -> None:
    """Held resources in the order held: source, mapping, type and id, and the rules
    they break (no values)."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir), run_migrations=False)
    try:
        by = SourceId(source) if source is not None else None
        held = platform.units.sources().quarantine
        items = held.list(source=by, after=after, limit=limit)
        total = held.count(source=by)
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    if as_json:
        from payerbridge.api.routers.quarantine import quarantined_public

        shown = {"total": total, "items": [quarantined_public(item) for item in items]}
        sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table("seq", "id", "source", "mapping", "resource", "issues", title="Quarantine")
    for item in items:
        mapping = f"{item.mapping_id}@{item.mapping_version}" if item.mapping_id else ""
        rules = ", ".join(sorted({issue.rule for issue in item.issues}))
        table.add_row(
            str(item.seq),
            item.id,
            item.source_id,
            mapping,
            f"{item.resource_type}/{item.resource_id or ''}",
            f"{len(item.issues)}: {rules}",
        )
    out.print(table)
    out.print(f"{len(items)} shown of {total} held")


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: Annotated[str, typer.Argument(help="The held resource's id.")],
    data_dir: DataDir = None,
) -> None:
    """One held resource as JSON: the issues, and the resource as the source produced it."""
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir), run_migrations=False)
    try:
        held = platform.units.sources().quarantine.get(QuarantineId(quarantine_id))
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    from payerbridge.api.routers.quarantine import quarantined_public

    shown = quarantined_public(held)
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")
