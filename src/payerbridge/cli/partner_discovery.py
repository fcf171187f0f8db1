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
from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, PartnerAuth

__all__ = ["add_partner_discovery_command"]


def add_partner_discovery_command(partners_app: typer.Typer) -> None:
    partners_app.command("discover")(partners_discover)


def partners_discover(
    wellknown_url: Annotated[
        str | None,
        typer.Argument(help="The partner's /.well-known/davinci-configuration URL."),
    ] = None,
    coverage: Annotated[
        Path | None,
        typer.Option(
            help="Instead of the URL: a JSON file of a member's Coverage from that payer "
            "carrying HRex's extension-CoverageDavinciWellknownLocation.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    partner_id: Annotated[
        str | None, typer.Option("--id", help="Short id; unset: from the host.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Unset: its CapabilityStatement's publisher, else host.")
    ] = None,
    npi: Annotated[
        str | None, typer.Option(help="Needed when the document's identifier is no NPI.")
    ] = None,
    auth: Annotated[PartnerAuth | None, typer.Option(help="smart, udap or none.")] = None,
    client_id: Annotated[str | None, typer.Option(help="Our client id there (SMART).")] = None,
    token_url: Annotated[str | None, typer.Option(help="Its token endpoint.")] = None,
    scope: Annotated[str | None, typer.Option(help="The scopes we ask it for.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Read a partner's davinci-configuration, take its payer endpoints (newest PDex
    version first) and its NPI, and register it as ``partners add`` does. Nothing is
    stored when the document is not clean or names an endpoint on another origin."""
    from payerbridge.routing.discovered import DiscoverPartner, PartnerAccess, discover_partner

    access = PartnerAccess(
        auth or PartnerAuth.NONE, client_id, token_url, scope or DEFAULT_PARTNER_SCOPE
    )
    command = DiscoverPartner(
        cli_actor(),
        wellknown_url=wellknown_url,
        coverage=_coverage(coverage) if coverage is not None else None,
        id=partner_id,
        name=name,
        npi=npi,
        access=access,
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
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        text = f"{path.name} is not JSON"
        raise fail(errors.InvalidInput(text, issues=[errors.Issue(text, "coverage")])) from exc
