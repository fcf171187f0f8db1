"""``payerbridge attribution …`` and ``payerbridge opt-outs …``: Provider Access's
attribution of members to providers, and the members' opt-out choices (ADR 0059)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import orjson
import typer

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail
from payerbridge.cli.options import DataDir

__all__ = ["attribution_app", "opt_outs_app"]

attribution_app = typer.Typer(
    no_args_is_help=True, help="Provider Access: which providers are attributed which members."
)
opt_outs_app = typer.Typer(
    no_args_is_help=True, help="Provider Access: members' opt-outs, and opt-ins after them."
)


def _json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@attribution_app.command("derive")
def attribution_derive(
    look_back_days: Annotated[
        int,
        typer.Option(
            help="A claim or encounter attributes its member to the providers it names "
            "for this many days from the day of service.",
            min=0,
        ),
    ] = 730,
    data_dir: DataDir = None,
) -> None:
    """Derive attribution again from the plan's own claims and encounters (billing,
    rendering and care-team providers and facilities, by NPI); rosters stay."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.provider_access.service import DeriveAttribution, derive_attribution

    with opened_platform(data_dir) as platform:
        try:
            run = derive_attribution(
                DeriveAttribution(look_back_days, cli_actor()), platform.units.provider_access()
            )
        except errors.PayerBridgeError as exc:
            raise fail(exc) from exc
    _json(run.to_json())


@attribution_app.command("load")
def attribution_load(
    roster: Annotated[
        Path,
        typer.Argument(
            help="CSV (provider_npi,patient_id,start,end) or a FHIR Group (.json).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(help="The roster's name; loading it again replaces it. Default: the file's."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Load a roster: every entry names a provider by NPI, one of the plan's members
    by Patient id, and the days the attribution holds. A defect refuses the whole roster."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.provider_access.rosters import roster_from_csv, roster_from_group
    from payerbridge.provider_access.service import LoadRoster, load_roster

    named = name or roster.stem
    try:
        text = roster.read_text(encoding="utf-8-sig")
        if roster.suffix.lower() == ".json":
            try:
                document = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise errors.MalformedContent(f"the roster is not JSON: {exc}") from None
            entries = roster_from_group(document, named)
        else:
            entries = roster_from_csv(text, named)
    except UnicodeDecodeError:
        raise fail(errors.InvalidInput("the roster is not UTF-8 text")) from None
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    with opened_platform(data_dir) as platform:
        try:
            run = load_roster(
                LoadRoster(named, tuple(entries), cli_actor()), platform.units.provider_access()
            )
        except errors.PayerBridgeError as exc:
            raise fail(exc) from exc
    _json(run.to_json())


@attribution_app.command("group")
def attribution_group(
    provider_npi: Annotated[str, typer.Argument(help="The provider's NPI.")],
    data_dir: DataDir = None,
) -> None:
    """The provider's Group today (pdex-provider-group), as its organization reads it."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.npi import is_valid_npi
    from payerbridge.provider_access.service import provider_group_today

    if not is_valid_npi(provider_npi):
        raise fail(errors.InvalidInput("the NPI is 10 digits with a valid check digit"))
    with opened_platform(data_dir) as platform:
        group = provider_group_today(provider_npi, platform.units.provider_access())
    _json(group)


@dataclass(frozen=True)
class _Asked:
    """A choice as the command line gave it."""

    member: str
    choice: str
    scope: str
    provider: str | None = None
    reason: str | None = None


def _record(asked: _Asked, data_dir: Path | None) -> None:
    """The choice kept, in force from now (an earlier day is the API's ``effective``)."""
    from payerbridge.cli.console import opened_platform
    from payerbridge.provider_access.model import Choice, OptOutReason, OptOutScope
    from payerbridge.provider_access.service import RecordChoice, record_choice
    from payerbridge.types import MemberId

    try:
        command = RecordChoice(
            MemberId(asked.member),
            Choice(asked.choice),
            OptOutScope(asked.scope),
            cli_actor(),
            asked.provider,
            None if asked.reason is None else OptOutReason(asked.reason),
        )
    except ValueError:
        scopes = ", ".join(OptOutScope)
        reasons = ", ".join(OptOutReason)
        text = f"--scope is one of {scopes}; --reason one of {reasons}"
        raise fail(errors.InvalidInput(text)) from None
    with opened_platform(data_dir) as platform:
        try:
            seq = record_choice(command, platform.units.provider_access())
        except errors.PayerBridgeError as exc:
            raise fail(exc) from exc
    _json({"seq": seq, "member": asked.member, "choice": asked.choice, "scope": asked.scope})


Scope = Annotated[str, typer.Option(help="global, provider-specific, purpose-specific, ...")]
Provider = Annotated[
    str | None, typer.Option(help="The provider's NPI, for a provider-specific choice.")
]


@opt_outs_app.command("record")
def opt_outs_record(
    member: Annotated[str, typer.Argument(help="The member's Patient id.")],
    scope: Scope = "global",
    provider: Provider = None,
    reason: Annotated[
        str | None, typer.Option(help="privacy-concern, member-choice, other, ...")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Record a member's opt-out of Provider Access, in force from now: her data goes to
    no provider it reaches (a scope other than provider-specific reaches them all)."""
    _record(_Asked(member, "opt-out", scope, provider, reason), data_dir)


@opt_outs_app.command("withdraw")
def opt_outs_withdraw(
    member: Annotated[str, typer.Argument(help="The member's Patient id.")],
    scope: Scope = "global",
    provider: Provider = None,
    data_dir: DataDir = None,
) -> None:
    """Record a member's opt-in after an opt-out: a global one ends every opt-out, a
    provider-specific one that provider's own."""
    _record(_Asked(member, "opt-in", scope, provider), data_dir)
