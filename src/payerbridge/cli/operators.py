"""``payerbridge operators …``: the console's accounts (ADR 0035). A password is typed
at a prompt or read from standard input (``--password-stdin``), never given as an
argument: arguments show in the process list and the shell's history."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from payerbridge import errors
from payerbridge.cli.console import cli_actor, fail, out, settings_for
from payerbridge.cli.options import DataDir
from payerbridge.security.model import Role

__all__ = ["operators_app"]

operators_app = typer.Typer(
    no_args_is_help=True,
    help="Operator accounts of the console (/console): viewer, reviewer, operator, auditor.",
)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from standard input (its first line) instead of a prompt.",
    ),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@contextmanager
def _unit(data_dir: Any) -> Iterator[Any]:
    from payerbridge.bootstrap import build_platform

    platform = build_platform(settings_for(data_dir))
    try:
        yield platform.units.operators()
    except errors.PayerBridgeError as exc:
        raise fail(exc) from exc
    finally:
        platform.close()


def _run(data_dir: Any, use_case: Callable[[Any], Any]) -> Any:
    with _unit(data_dir) as uow:
        return use_case(uow)


@operators_app.command("add")
def operators_add(
    name: Annotated[str, typer.Argument(help="The account's name (lower case).")],
    role: Annotated[Role, typer.Option(help="What the account may do (ADR 0035).")],
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
) -> None:
    """Add an account; the password (12 characters or more) is asked for."""
    from payerbridge.security.operator_accounts import AddOperator, add_operator

    asked = AddOperator(name, role, _password(password_stdin), cli_actor())
    _run(data_dir, lambda uow: add_operator(asked, uow))
    out.print(f"operator {name} added with role {role.value}")


@operators_app.command("list")
def operators_list(data_dir: DataDir = None) -> None:
    """The accounts, their roles and whether they are disabled."""
    from payerbridge.security.operator_accounts import list_operators

    found = _run(data_dir, list_operators)
    table = Table("name", "role", "created", "password changed", "disabled", title="Operators")
    for operator in found:
        table.add_row(
            operator.name,
            operator.role.value,
            operator.created_at.isoformat(timespec="seconds"),
            operator.password_changed_at.isoformat(timespec="seconds"),
            operator.disabled_at.isoformat(timespec="seconds") if operator.disabled_at else "",
        )
    out.print(table)


@operators_app.command("disable")
def operators_disable(
    name: Annotated[str, typer.Argument(help="The account to disable.")],
    data_dir: DataDir = None,
) -> None:
    """Disable an account: its sessions end at once and it cannot sign in."""
    from payerbridge.security.operator_accounts import AccountAction, disable_operator

    _run(data_dir, lambda uow: disable_operator(AccountAction(name, cli_actor()), uow))
    out.print(f"operator {name} disabled")


@operators_app.command("set-password")
def operators_set_password(
    name: Annotated[str, typer.Argument(help="The account.")],
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
) -> None:
    """Replace an account's password; its sessions end."""
    from payerbridge.security.operator_accounts import ReplacePassword, set_operator_password

    asked = ReplacePassword(name, _password(password_stdin), cli_actor())
    _run(data_dir, lambda uow: set_operator_password(asked, uow))
    out.print(f"password of operator {name} replaced; its sessions have ended")


@operators_app.command("unlock")
def operators_unlock(
    name: Annotated[str, typer.Argument(help="The account a guesser slowed.")],
    data_dir: DataDir = None,
) -> None:
    """Let an account sign in again at once, from every address: its sign-in throttle's
    buckets are filled again (audited)."""
    from payerbridge.security.operator_accounts import AccountAction, unlock_operator

    _run(data_dir, lambda uow: unlock_operator(AccountAction(name, cli_actor()), uow))
    out.print(f"operator {name} may sign in again")


@operators_app.command("set-role")
def operators_set_role(
    name: Annotated[str, typer.Argument(help="The account.")],
    role: Annotated[Role, typer.Option(help="Its new role.")],
    data_dir: DataDir = None,
) -> None:
    """Change an account's role; its sessions end."""
    from payerbridge.security.operator_accounts import ChangeRole, set_operator_role

    _run(data_dir, lambda uow: set_operator_role(ChangeRole(name, role, cli_actor()), uow))
    out.print(f"operator {name} now has role {role.value}")
