"""``payerbridge partners discover``: register a partner from its HRex
``.well-known/davinci-configuration`` alone (ADR 0061), as ``POST /partners/$discover``
does, audited with the operating-system user as the actor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail, opened_platform, out
from payerbridge.cli.options import DataDir
from payerbridge.routing.model import PartnerAuth

__all__ = ["add_partner_discovery_command"]


def add_partner_discovery_command(partners_app: typer.Typer) -> None:
    partners_app.command("discover")(partners_discover)


def partners_discover(
    source: Annotated[
        str,
        typer.Argument(
            help="The partner's /.well-known/davinci-configuration URL, or a JSON file of a "
            "member's Coverage from that payer carrying HRex's "
            "extension-CoverageDavinciWellknownLocation."
        ),
    ],
    partner_id: Annotated[
        str | None, typer.Option("--id", help="Short id; unset: from the host.")
    ] = None,
    npi: Annotated[
        str | None, typer.Option(help="Needed when the document's identifier is no NPI.")
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(help="Our client id at its authorization server (SMART); unset: none."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Read a partner's davinci-configuration, take its payer endpoints (newest PDex
    version first) and its NPI, and register it as ``partners add`` does, named as its
    CapabilityStatement names it. Nothing is stored when the document is not clean or
    names an endpoint on another origin. (UDAP, a token URL, a scope or a name of your
    own: ``POST /partners/$discover``.)"""
    from payerbridge.routing.discovered import DiscoverPartner, PartnerAccess, discover_partner

    is_url = source.startswith(("https://", "http://"))
    command = DiscoverPartner(
        cli_actor(),
        wellknown_url=source if is_url else None,
        coverage=None if is_url else _coverage(Path(source)),
        id=partner_id,
        npi=npi,
        access=PartnerAccess(PartnerAuth.SMART if client_id else PartnerAuth.NONE, client_id),
    )
    try:
        with opened_platform(data_dir) as platform:
            found = discover_partner(command, platform.units.partners())
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    partner = found.enrolled.partner
    verb = "registered" if found.enrolled.created else "updated"
    out.print(f"partner '{partner.id}' {verb} from {found.reading.location}")
    out.print(f"  {partner.name}, NPI {partner.npi} ({partner.auth.value})")
    for endpoint in partner.call_order():
        versions = ", ".join(endpoint.versions) or "no version named"
        out.print(f"  - {endpoint.url} ({versions}; {endpoint.source})")
    if found.enrolled.unread is not None:
        out.print(f"[yellow]capabilities not read:[/yellow] {found.enrolled.unread}")


def _coverage(path: Path) -> Any:
    """The Coverage in ``path``; InvalidInput (exit 2) when it is no JSON file."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        text = f"{path} is neither an http(s) URL nor a readable JSON file of a Coverage"
        raise fail(errors.InvalidInput(text, issues=[errors.Issue(text, "source")])) from exc
