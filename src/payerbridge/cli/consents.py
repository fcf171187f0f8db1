"""``payerbridge consents …``: the members' consents (capture an opt-in, show, revoke)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor
from payerbridge.cli.options import DataDir
from payerbridge.types import ClientId, MemberId, PartnerId

__all__ = ["consents_app"]

consents_app = typer.Typer(no_args_is_help=True, help="Members' consents.")
out = Console()


@consents_app.command("capture")
def consents_capture(
    member_id: Annotated[str, typer.Option(help="Our member id (as on the new card).")],
    old_payer: Annotated[str, typer.Option(help="Registered partner id of the old payer.")],
    policy: Annotated[Literal["regular", "sensitive"], typer.Option(help="Data scope.")],
    start: Annotated[str, typer.Option(help="First day in force (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last day in force (YYYY-MM-DD).")],
    source_reference: Annotated[str, typer.Option(help="Reference to the signed opt-in document.")],
    data_dir: DataDir = None,
) -> None:
    """Capture a member's opt-in to payer-to-payer exchange; prints the consent id."""
    from pydantic import ValidationError

    from payerbridge.api.schemas import ConsentIn
    from payerbridge.bootstrap import build_platform
    from payerbridge.cli.console import fail, settings_for
    from payerbridge.exchange.intake.opt_in import OptIn
    from payerbridge.exchange.intake.submission import capture_opt_in

    try:
        grant = ConsentIn(
            policy=policy,
            start=date.fromisoformat(start),
            end=date.fromisoformat(end),
            source_reference=source_reference,
        ).to_domain()
    except (ValueError, ValidationError) as exc:
        raise fail(errors.InvalidInput(f"the opt-in is not valid: {exc}")) from exc
    platform = build_platform(settings_for(data_dir))
    try:
        uow = platform.units.exchange()  # where an opt-in is captured
        partner = uow.partners.get(PartnerId(old_payer))
        if partner is None:
            raise fail(errors.UnprocessableRequest(f"no partner is registered as '{old_payer}'"))
        opt_in = OptIn(grant, MemberId(member_id), partner, ClientId(cli_actor()))
        stored = capture_opt_in(uow, opt_in)
    finally:
        platform.close()
    typer.echo(stored.consent_id)


@consents_app.command("show")
def consents_show(
    consent_id: Annotated[str, typer.Argument(help="The consent id.")],
    data_dir: DataDir = None,
) -> None:
    """Print a consent as JSON (its fields and the HRex resource)."""
    from payerbridge.api.routers.consents import consent_public
    from payerbridge.bootstrap import build_platform
    from payerbridge.cli.console import fail, settings_for

    platform = build_platform(settings_for(data_dir))
    try:
        stored = platform.units.exchange().consents.get(consent_id)
    finally:
        platform.close()
    if stored is None:
        raise fail(errors.NotFound(f"Consent/{consent_id} does not exist"))
    typer.echo(orjson.dumps(consent_public(stored), option=orjson.OPT_INDENT_2).decode())


@consents_app.command("revoke")
def consents_revoke(
    consent_id: Annotated[str, typer.Argument(help="The consent to revoke.")],
    revoked_by: Annotated[
        str | None, typer.Option(help="Who asked (default: cli:<os user>).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke a consent now: later requests under it are refused, and unfinished
    exchanges under a member's opt-in are blocked (reason ``revoked``). Audited."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.cli.console import fail, settings_for
    from payerbridge.exchange.operations.interventions import revoke_and_stop

    platform = build_platform(settings_for(data_dir))
    try:
        revoked, blocked = revoke_and_stop(
            platform.units.exchange(), consent_id, by=revoked_by or cli_actor(), request_id=None
        )
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()
    at = revoked.record.revoked_at
    out.print(f"consent {consent_id} revoked at {at.isoformat() if at else '?'}")
    out.print(f"exchanges blocked: {len(blocked)}")


@consents_app.command("code-sets")
def consents_code_sets(data_dir: DataDir = None) -> None:
    """The sensitive code sets a regular consent withholds here: the shipped ones with
    the operator's additions (PAYERBRIDGE_SENSITIVE_CODE_SETS), checked, with the
    version and digest recorded on every disclosure decision."""
    from payerbridge.cli.console import fail, settings_for
    from payerbridge.policies import segmentation_policy

    try:
        code_sets = segmentation_policy(settings_for(data_dir)).code_sets
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    out.print(f"code sets {code_sets.label}")
    table = Table("category", "labels", "codes", "code families", "legal basis")
    for category in code_sets.categories:
        table.add_row(
            category.name,
            str(len(category.security_labels)),
            str(len(category.codes)),
            str(len(category.code_prefixes)),
            category.legal_basis,
        )
    out.print(table)
