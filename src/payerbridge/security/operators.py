"""The people who run payerbridge through its console (pure): operator accounts, their
roles and what each role may do, passwords (argon2id) and sessions (ADR 0035).

A person signs in with a name and a password; the console keeps a server-side session
whose random token only the browser holds (the database keeps its SHA-256). The CSRF
token of a session is derived from that token, so it is never stored either.

The roles, and what they may do (``PERMISSIONS``). Every role reads the console's pages
(``READ``); each other role adds one duty and none includes another's: who decides
identity reviews is not who replays exchanges, and the auditor changes nothing.

    role       read  decide reviews  intervene  partners  audit
    viewer      x
    reviewer    x          x
    operator    x                        x          x
    auditor     x                                            x
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from payerbridge.errors import InvalidInput, Issue
from payerbridge.security.model import (
    OperatorSession,
    Role,
)

__all__ = [
    "BreakGlassPolicy",
    "SessionPolicy",
    "SessionState",
    "check_name",
    "check_password",
    "csrf_token_of",
    "hash_password",
    "name_digest",
    "password_matches",
    "session_state",
    "token_digest",
]


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: ``idle`` without a request, ``absolute`` at most; its
    last request is recorded at most every ``touch_every`` (a page is not a write)."""

    idle: timedelta
    absolute: timedelta
    touch_every: timedelta = timedelta(seconds=30)


class SessionState(StrEnum):
    LIVE = "live"
    IDLE = "idle"  # no request for longer than the idle limit
    EXPIRED = "expired"  # older than the absolute limit
    ENDED = "ended"  # signed out, or the account was disabled or its password changed


def session_state(session: OperatorSession, now: datetime, policy: SessionPolicy) -> SessionState:
    if session.ended_at is not None:
        return SessionState.ENDED
    if now - session.created_at >= policy.absolute:
        return SessionState.EXPIRED
    if now - session.last_seen_at >= policy.idle:
        return SessionState.IDLE
    return SessionState.LIVE


def token_digest(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_of(token: str) -> str:
    """The session's CSRF synchronizer token: derived from the session token (which only
    the browser holds), so a page's forms carry it and nothing stores it."""
    return hmac.new(token.encode(), b"payerbridge console csrf", hashlib.sha256).hexdigest()


def name_digest(name: str) -> str:
    """A typed name as the audit trail and the login throttle know it: a name that is no
    account may be a password typed in the wrong field, and is never kept as typed."""
    return hashlib.sha256(name.strip().lower().encode()).hexdigest()[:32]


_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 256  # argon2 takes any length; a bound keeps a request's cost bounded


def check_name(name: str) -> str:
    """An account name: 2 to 64 of lower-case letters, digits, ``.``, ``_``, ``-``, from a
    letter (InvalidInput naming the rule)."""
    if not _NAME.match(name):
        text = (
            f"'{name[:64]}' is not an account name: 2 to 64 lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter"
        )
        raise InvalidInput(text, issues=[Issue(text, "name", "value")])
    return name


def check_password(password: str, *, name: str) -> str:
    """A new password: 12 to 256 characters, not the account's name."""
    problem = None
    if len(password) < MIN_PASSWORD:
        problem = f"a password has at least {MIN_PASSWORD} characters"
    elif len(password) > MAX_PASSWORD:
        problem = f"a password has at most {MAX_PASSWORD} characters"
    elif password.strip().lower() == name.lower():
        problem = "a password is not the account's name"
    if problem is not None:
        raise InvalidInput(problem, issues=[Issue(problem, "password", "value")])
    return password


# argon2id with argon2-cffi's defaults (RFC 9106's second recommended option: t=3,
# 64 MiB, p=4): tens of milliseconds a sign-in, days of GPU time a guessed password.
_HASHER = PasswordHasher()


@cache
def _decoy() -> str:
    """Verified when the name is no account, so that a wrong name takes as long as a
    wrong password and timing does not tell which names exist (made once, when first
    needed: not at import)."""
    return _HASHER.hash("payerbridge decoy password, never an account's")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(encoded: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``encoded`` was made from (``None``: no account;
    the decoy is verified, at the same cost)."""
    try:
        return _HASHER.verify(encoded or _decoy(), password[:MAX_PASSWORD]) and encoded is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class BreakGlassPolicy:
    """Who may break the glass (the roles that may see identifiers) and whether a second
    operator must approve (``PAYERBRIDGE_BREAK_GLASS_ROLES``, ``…_APPROVAL``)."""

    roles: frozenset[Role] = frozenset({Role.OPERATOR})
    needs_approval: bool = False

    def refusal(self, role: Role) -> str | None:
        if role in self.roles:
            return None
        allowed = ", ".join(sorted(r.value for r in self.roles)) or "no role"
        return (
            f"your role ({role.value}) may not see members' identifiers: the plan lets "
            f"{allowed} break the glass (PAYERBRIDGE_BREAK_GLASS_ROLES)"
        )
