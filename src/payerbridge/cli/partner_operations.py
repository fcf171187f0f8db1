"""``payerbridge partners operations``: how a partner is run, set by an operator (the
same use case and checks as ``PUT /partners/{id}/operations``, audited with the
operating-system user as the actor): suspended or active, its maintenance windows, its
rate, its exchanges' time budget and whom to call about it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import typer

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail, settings_for
from payerbridge.cli.options import DataDir
from payerbridge.types import PartnerId

__all__ = ["add_partner_operations_command"]


SuspendOption = Annotated[
    str | None,
    typer.Option(help="Suspend exchanges with it; the text is shown as the reason."),
]

ResumeOption = Annotated[bool, typer.Option("--resume", help="Take exchanges again.")]

MaintenanceOption = Annotated[
    list[str] | None,
    typer.Option(
        help="A maintenance window 'START/END=reason' (instants with offsets), or "
        "weekly 'sun 02:00-04:00 America/New_York=reason'; repeatable; replaces the "
        "windows set before."
    ),
]

NoMaintenanceOption = Annotated[
    bool, typer.Option("--no-maintenance", help="Clear its maintenance windows.")
]

RateLimitOption = Annotated[
    str | None,
    typer.Option(
        help="The calls it takes, 'N/SECONDS' (e.g. 120/60), shared by every worker; "
        "'none' clears it."
    ),
]

ExchangeBudgetOption = Annotated[
    str | None,
    typer.Option(
        help="How long an exchange with it keeps trying from its submission before it "
        "is dead-lettered (deadline-exceeded): seconds, or with a unit (90m, 36h, 7d); "
        "'default' for the platform's (the rule's clocks)."
    ),
]

ContactOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Whom to call about it, 'NAME;EMAIL;PHONE' (email or phone may be left "
        "empty); repeatable; replaces the contacts set before."
    ),
]

NoContactsOption = Annotated[bool, typer.Option("--no-contacts", help="Clear its contacts.")]


def add_partner_operations_command(partners_app: typer.Typer) -> None:
    partners_app.command("operations")(partners_operations)


def partners_operations(
    partner_id: Annotated[str, typer.Argument(help="The partner's id.")],
    suspend: SuspendOption = None,
    resume: ResumeOption = False,
    maintenance: MaintenanceOption = None,
    no_maintenance: NoMaintenanceOption = False,
    rate_limit: RateLimitOption = None,
    exchange_budget: ExchangeBudgetOption = None,
    contact: ContactOption = None,
    no_contacts: NoContactsOption = False,
    data_dir: DataDir = None,
) -> None:
    """Suspend or resume a partner, set its maintenance windows (new exchanges wait
    for a window to end), its rate, its exchanges' time budget or its contacts; prints
    how it is now run."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.routing.enrolment import SetOperations, registered, set_operations

    if suspend is not None and resume:
        raise fail(errors.InvalidInput("give --suspend or --resume, not both"))
    # Each edit, when its option was given, laid over the operations as they are.
    edits: list[tuple[bool, Callable[[], dict[str, Any]]]] = [
        (suspend is not None, lambda: {"status": "suspended", "note": suspend}),
        (resume, lambda: {"status": "active", "note": None}),
        (no_maintenance, lambda: {"maintenance": []}),
        (
            bool(maintenance),
            lambda: {"maintenance": [_window_option(t) for t in maintenance or []]},
        ),
        (rate_limit is not None, lambda: {"rate_limit": _rate_option(rate_limit or "")}),
        (
            exchange_budget is not None,
            lambda: {"exchange_budget_seconds": _budget_option(exchange_budget or "")},
        ),
        (no_contacts, lambda: {"contacts": []}),
        (bool(contact), lambda: {"contacts": [_contact_option(t) for t in contact or []]}),
    ]
    try:
        platform = build_platform(settings_for(data_dir))
        try:
            uow = platform.units.partners()
            document = registered(uow.partners, PartnerId(partner_id)).operations.to_json()
            for given, edit in edits:
                if given:
                    document |= edit()
            asked = SetOperations(PartnerId(partner_id), document, cli_actor())
            partner = set_operations(asked, uow)
        finally:
            platform.close()
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    sys.stdout.write(
        orjson.dumps(partner.operations.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    )


def _rate_option(text: str) -> Any:
    """'N/SECONDS' as the API's rate_limit document (checked there); 'none' clears it."""
    if text.strip().lower() == "none":
        return None
    requests, _, seconds = text.partition("/")
    try:
        return {"requests": int(requests), "per_seconds": float(seconds)}
    except ValueError:
        return text  # refused by the check, which names the form


def _contact_option(text: str) -> dict[str, str | None]:
    """'NAME;EMAIL;PHONE' as the API's contact (checked there, which names what is
    missing or malformed)."""
    parts = text.split(";")
    if len(parts) > 3:
        raise fail(errors.InvalidInput(f"a contact is 'NAME;EMAIL;PHONE', not {len(parts)} fields"))
    name, email, phone = [*parts, "", ""][:3]
    return {k: v.strip() or None for k, v in (("name", name), ("email", email), ("phone", phone))}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _budget_option(text: str) -> Any:
    """'default' (None), or seconds with an optional unit, as the API's budget (checked
    there, which names the range)."""
    value = text.strip().lower()
    if value == "default":
        return None
    unit = _UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    try:
        return float(number) * (unit or 1)
    except ValueError:
        return text  # refused by the check, which names the form


def _window_option(text: str) -> dict[str, Any]:
    """'START/END=reason' or 'DAY HH:MM-HH:MM ZONE=reason' as the API's window document
    (checked there, with the other fields)."""
    when, _, reason = text.partition("=")
    parts = when.split()
    if len(parts) == 3 and "-" in parts[1]:
        start, _, end = parts[1].partition("-")
        return {
            "weekly": parts[0].lower(),
            "start": start,
            "end": end,
            "zone": parts[2],
            "reason": reason,
        }
    start, _, end = when.partition("/")
    return {"start": start, "end": end, "reason": reason}
