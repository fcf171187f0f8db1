"""Who the settings may name as acting (ADR 0046), checked when the settings load: the
principals an edge authenticates (``api:<client id>``, ``cli:<os user>``,
``console:<account>``) and the console's roles (``security.operators.Role``, above this
module; a test keeps the two equal)."""

from __future__ import annotations

__all__ = ["CONSOLE_ROLES", "PRINCIPAL_KINDS", "check_console_roles", "check_principals"]

PRINCIPAL_KINDS = frozenset({"api", "cli", "console"})
CONSOLE_ROLES = frozenset({"viewer", "reviewer", "operator", "auditor"})


def check_principals(value: str, *, setting: str) -> str:
    """``value``'s principals, space-delimited, normalised; ValueError naming the first
    that is not ``<kind>:<name>`` of a known kind."""
    for principal in value.split():
        kind, _, name = principal.partition(":")
        if kind not in PRINCIPAL_KINDS or not name:
            raise ValueError(
                f"{setting} names principals as console:<account>, api:<client id> or "
                f"cli:<os user>, space-delimited; got {principal!r}"
            )
    return " ".join(value.split())


def check_console_roles(value: str, *, setting: str) -> str:
    """``value``'s console roles, space-delimited, normalised; ValueError naming any other."""
    unknown = sorted(set(value.split()) - CONSOLE_ROLES)
    if unknown:
        raise ValueError(
            f"{setting} names console roles ({', '.join(sorted(CONSOLE_ROLES))}); "
            f"got {', '.join(unknown)}"
        )
    return " ".join(value.split())
