"""The console's account use cases: add an operator, change a password or a role,
disable an account, unlock one; sign in (throttled against guessing), find a request's
session, sign out. Each change commits with its audit event, the operator named as the
actor of what they do (ADR 0035).

The sign-in throttle (ADR 0046) slows a guesser without locking the owner out: its
tightest bucket is the account's name *from one address*, so a guesser from one address
spends only their own; a looser bucket per name alone bounds guessing from many
addresses, and when that one is spent another operator unlocks the account
(``unlock_operator``, ``payerbridge operators unlock``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import (
    Conflict,
    Issue,
    NotFound,
    RateLimited,
    StoreConflict,
    TooManyAttempts,
    Unauthenticated,
)
from payerbridge.security.limits import RateLimiter, RatePolicy
from payerbridge.security.model import Operator, OperatorSession, Rate, Role
from payerbridge.security.operators import (
    BreakGlassPolicy,
    SessionPolicy,
    SessionState,
    check_name,
    check_password,
    csrf_token_of,
    hash_password,
    name_digest,
    password_matches,
    session_state,
    token_digest,
)
from payerbridge.security.ports import OperatorAccounts, ThrottleBuckets
from payerbridge.security.unit import OperatorUnit
from payerbridge.transactions import Transactions, UnitOfWork

__all__ = [
    "LOGIN_RATES",
    "SESSION_ENDINGS",
    "AccountAction",
    "AddOperator",
    "ChangeRole",
    "OperatorPorts",
    "ReplacePassword",
    "SignIn",
    "SignedIn",
    "add_operator",
    "console_actor",
    "disable_operator",
    "list_operators",
    "log_in",
    "log_out",
    "session_of",
    "set_operator_password",
    "set_operator_role",
    "unlock_operator",
]

# Sign-in attempts, whatever their outcome: per account name from one address 5 at once
# then one every 12 s (a guesser there gets 300 passwords an hour, against a 12-character
# password; the owner elsewhere is not slowed); per account name from anywhere 60 at
# once then one every 30 s (many addresses together get 120 an hour); per address 30 at
# once then 2 a second (a shared office's NAT).
_BY_NAME_AND_ADDRESS = "console sign-in by name and address"
_BY_NAME = "console sign-in by name"
_BY_ADDRESS = "console sign-in by address"
LOGIN_RATES = RatePolicy(
    default=None,
    operations={
        _BY_NAME_AND_ADDRESS: Rate(per_second=1 / 12, burst=5),
        _BY_NAME: Rate(per_second=1 / 30, burst=60),
        _BY_ADDRESS: Rate(2.0, burst=30),
    },
)

# What a failed sign-in says, whatever failed: it does not tell which names exist.
_WRONG = "the name or the password is wrong, or the account is disabled"


@dataclass(frozen=True)
class OperatorPorts:
    """The console's accounts as the platform keeps them (``Platform.operators``); each
    use case takes an ``OperatorUnit`` built from them (``platform.units.operators()``)."""

    accounts: OperatorAccounts
    transactions: Transactions
    logins: RateLimiter  # LOGIN_RATES on the shared buckets
    sessions: SessionPolicy
    clock: Callable[[], datetime]
    break_glass: BreakGlassPolicy = BreakGlassPolicy()  # who may see identifiers (ADR 0046)
    buckets: ThrottleBuckets | None = None  # the logins' shared buckets, for an unlock


@dataclass(frozen=True)
class SignedIn:
    """A request's operator and session, with the session's CSRF token."""

    operator: Operator
    session: OperatorSession
    csrf_token: str

    @property
    def actor(self) -> str:
        return console_actor(self.operator.name)


def console_actor(name: str) -> str:
    """Who the audit trail names for what an operator does in the console."""
    return f"console:{name}"


def _event(
    at: datetime, actor: str, action: str, name: str, outcome: str, **detail: object
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=actor,
        action=action,
        entity_type="Operator",
        entity_id=name,
        outcome=outcome,
        detail=dict(detail),
    )


@dataclass(frozen=True)
class AddOperator:
    """``actor`` adds the account ``name`` with ``role`` and ``password``."""

    name: str
    role: Role
    password: str = field(repr=False)  # never in a log or a traceback
    actor: str


@dataclass(frozen=True)
class ReplacePassword:
    name: str
    password: str = field(repr=False)
    actor: str


@dataclass(frozen=True)
class ChangeRole:
    name: str
    role: Role
    actor: str


@dataclass(frozen=True)
class AccountAction:
    """``actor`` acts on the account ``name`` (disables it, unlocks it)."""

    name: str
    actor: str


@dataclass(frozen=True)
class SignIn:
    """A sign-in with ``name`` and ``password`` from ``address``, opening a session with
    the new random ``token`` if it holds."""

    name: str
    password: str = field(repr=False)
    token: str = field(repr=False)
    address: str


def add_operator(command: AddOperator, uow: OperatorUnit) -> Operator:
    """A new account; Conflict when the name is taken, InvalidInput for a bad name or
    password."""
    name, role, actor = command.name, command.role, command.actor
    check_name(name)
    check_password(command.password, name=name)
    now = uow.clock()
    operator = Operator(name, role, hash_password(command.password), now, now)
    try:
        with uow:
            uow.accounts.add(uow, operator)
            uow.record(_event(now, actor, "operator.add", name, "success", role=role.value))
    except StoreConflict as exc:
        text = f"an operator named '{name}' exists"
        raise Conflict(text, issues=[Issue(text, "name", "duplicate")]) from exc
    return operator


def list_operators(uow: OperatorUnit) -> list[Operator]:
    return uow.accounts.list()


def set_operator_password(command: ReplacePassword, uow: OperatorUnit) -> None:
    """Replace the password; the account's sessions end (signed in again with the new)."""
    name = command.name
    check_password(command.password, name=name)
    encoded = hash_password(command.password)
    with uow:
        if not uow.accounts.set_password(uow, name, encoded):
            raise _no_operator(name)
        ended = uow.accounts.end_sessions_of(uow, name)
        uow.record(
            _event(uow.now, command.actor, "operator.password", name, "success", ended=ended)
        )


def set_operator_role(command: ChangeRole, uow: OperatorUnit) -> None:
    name, role = command.name, command.role
    with uow:
        if not uow.accounts.set_role(uow, name, role):
            raise _no_operator(name)
        ended = uow.accounts.end_sessions_of(uow, name)
        uow.record(
            _event(
                uow.now,
                command.actor,
                "operator.role",
                name,
                "success",
                role=role.value,
                ended=ended,
            )
        )


def disable_operator(command: AccountAction, uow: OperatorUnit) -> None:
    """Disable the account and end its sessions; NotFound when there is none, Conflict
    when it was disabled before."""
    name = command.name
    with uow:
        if not uow.accounts.disable(uow, name):
            if uow.accounts.get(name) is None:
                raise _no_operator(name)
            raise Conflict(f"operator '{name}' is disabled already")
        ended = uow.accounts.end_sessions_of(uow, name)
        uow.record(_event(uow.now, command.actor, "operator.disable", name, "success", ended=ended))


def _no_operator(name: str) -> NotFound:
    return NotFound(f"no operator is named '{name[:64]}'")


def log_in(command: SignIn, uow: OperatorUnit) -> SignedIn:
    """Open a session with the new random token for the account whose password this is.
    Each attempt spends one of the name's and one of the address's sign-ins first
    (RateLimited when either is spent); a failure is Unauthenticated, audited with the
    typed name's digest, saying no more than ``_WRONG``."""
    name, address = command.name.strip().lower(), command.address
    typed = name_digest(name)
    seconds = uow.clock().timestamp()
    uow.logins.take(f"address:{address}", _BY_ADDRESS, now=seconds)
    try:
        uow.logins.take(f"{_name_subject(typed)}@{address}", _BY_NAME_AND_ADDRESS, now=seconds)
        uow.logins.take(_name_subject(typed), _BY_NAME, now=seconds)
    except RateLimited as exc:
        text = (
            f"too many sign-ins to this account: retry in {exc.retry_after_seconds} seconds, "
            "or ask another operator to unlock it (payerbridge operators unlock)"
        )
        raise TooManyAttempts(text, retry_after_seconds=exc.retry_after_seconds) from exc
    operator = uow.accounts.get(name)
    matches = password_matches(operator.password_hash if operator else None, command.password)
    now = uow.clock()
    if operator is None or not matches or operator.is_disabled:
        reason = (
            "unknown-name"
            if operator is None
            else "disabled"
            if operator.is_disabled
            else "wrong-password"
        )
        with uow:
            uow.record(
                _event(now, "console:anonymous", "console.login", typed, "failure", reason=reason)
            )
        raise Unauthenticated(_WRONG, issues=[Issue(_WRONG, "name", "login")])
    session = OperatorSession(token_digest(command.token), operator.name, now, now)
    with uow:
        uow.accounts.open_session(uow, session)
        uow.record(
            _event(
                now,
                console_actor(operator.name),
                "console.login",
                operator.name,
                "success",
                role=operator.role.value,
                session=session.token_hash[:16],
            )
        )
    return SignedIn(operator, session, csrf_token_of(command.token))


def _name_subject(typed: str) -> str:
    """The throttle's subject for a typed name (its digest): ``@<address>`` follows it in
    the bucket of one address."""
    return f"name:{typed}"


def unlock_operator(command: AccountAction, uow: OperatorUnit) -> int:
    """Fill the sign-in buckets of the account again (from every address): the way back
    in for an operator a guesser slowed. NotFound when there is no such account; how
    many buckets were emptied. Audited as ``operator.unlock``."""
    name = command.name
    if uow.accounts.get(name) is None:
        raise _no_operator(name)
    if uow.buckets is None:
        raise RuntimeError("the sign-in buckets are not wired: nothing to unlock")
    forgotten = uow.buckets.forget_subject(_name_subject(name_digest(name)))
    with uow:
        uow.record(
            _event(uow.now, command.actor, "operator.unlock", name, "success", buckets=forgotten)
        )
    return forgotten


def session_of(token: str, uow: OperatorUnit) -> SignedIn:
    """The live session whose token this is, its last request recorded now (at most
    every ``touch_every``); Unauthenticated saying why when there is none."""
    found = uow.accounts.session(token_digest(token)) if token else None
    if found is None:
        raise _signed_out("signin")
    now = uow.clock()
    state = session_state(found, now, uow.sessions)
    operator = uow.accounts.get(found.operator)
    if state is SessionState.LIVE and (operator is None or operator.is_disabled):
        state = SessionState.ENDED
    if state is not SessionState.LIVE:
        raise _signed_out(state.value)
    assert operator is not None
    if now - found.last_seen_at >= uow.sessions.touch_every:
        with uow:
            uow.accounts.touch_session(uow, found.token_hash)
    return SignedIn(operator, found, csrf_token_of(token))


SESSION_ENDINGS = {
    "signin": "sign in to use the console",
    "idle": "your session expired after a while without use; sign in again",
    "expired": "your session reached its time limit; sign in again",
    "ended": "your session has ended; sign in again",
}


def _signed_out(why: str) -> Unauthenticated:
    """Unauthenticated saying why, the reason's key in its issue (``session.<why>``)."""
    text = SESSION_ENDINGS[why]
    return Unauthenticated(text, issues=[Issue(text, f"session.{why}", "login")])


def log_out(signed_in: SignedIn, uow: OperatorUnit) -> None:
    with uow:
        if uow.accounts.end_session(uow, signed_in.session.token_hash):
            _record_logout(uow, signed_in)


def _record_logout(unit: UnitOfWork, signed_in: SignedIn) -> None:
    unit.record(
        _event(
            unit.now,
            signed_in.actor,
            "console.logout",
            signed_in.operator.name,
            "success",
            session=signed_in.session.token_hash[:16],
        )
    )
