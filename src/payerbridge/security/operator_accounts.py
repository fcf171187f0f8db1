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
from dataclasses import dataclass
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
from payerbridge.transactions import Transactions, UnitOfWork

__all__ = [
    "LOGIN_RATES",
    "SESSION_ENDINGS",
    "OperatorPorts",
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


def add_operator(
    ports: OperatorPorts, name: str, role: Role, password: str, *, actor: str
) -> Operator:
    """A new account; Conflict when the name is taken, InvalidInput for a bad name or
    password."""
    check_name(name)
    check_password(password, name=name)
    now = ports.clock()
    operator = Operator(name, role, hash_password(password), now, now)
    try:
        with ports.transactions.begin() as unit:
            ports.accounts.add(unit, operator)
            unit.record(_event(now, actor, "operator.add", name, "success", role=role.value))
    except StoreConflict as exc:
        text = f"an operator named '{name}' exists"
        raise Conflict(text, issues=[Issue(text, "name", "duplicate")]) from exc
    return operator


def list_operators(ports: OperatorPorts) -> list[Operator]:
    return ports.accounts.list()


def set_operator_password(ports: OperatorPorts, name: str, password: str, *, actor: str) -> None:
    """Replace the password; the account's sessions end (signed in again with the new)."""
    check_password(password, name=name)
    encoded = hash_password(password)
    with ports.transactions.begin() as unit:
        if not ports.accounts.set_password(unit, name, encoded):
            raise _no_operator(name)
        ended = ports.accounts.end_sessions_of(unit, name)
        unit.record(_event(unit.now, actor, "operator.password", name, "success", ended=ended))


def set_operator_role(ports: OperatorPorts, name: str, role: Role, *, actor: str) -> None:
    with ports.transactions.begin() as unit:
        if not ports.accounts.set_role(unit, name, role):
            raise _no_operator(name)
        ended = ports.accounts.end_sessions_of(unit, name)
        unit.record(
            _event(unit.now, actor, "operator.role", name, "success", role=role.value, ended=ended)
        )


def disable_operator(ports: OperatorPorts, name: str, *, actor: str) -> None:
    """Disable the account and end its sessions; NotFound when there is none, Conflict
    when it was disabled before."""
    with ports.transactions.begin() as unit:
        if not ports.accounts.disable(unit, name):
            if ports.accounts.get(name) is None:
                raise _no_operator(name)
            raise Conflict(f"operator '{name}' is disabled already")
        ended = ports.accounts.end_sessions_of(unit, name)
        unit.record(_event(unit.now, actor, "operator.disable", name, "success", ended=ended))


def _no_operator(name: str) -> NotFound:
    return NotFound(f"no operator is named '{name[:64]}'")


def log_in(ports: OperatorPorts, name: str, password: str, *, token: str, address: str) -> SignedIn:
    """Open a session with the new random ``token`` for the account whose password this
    is. Each attempt spends one of the name's and one of the address's sign-ins first
    (RateLimited when either is spent); a failure is Unauthenticated, audited with the
    typed name's digest, saying no more than ``_WRONG``."""
    name = name.strip().lower()
    typed = name_digest(name)
    seconds = ports.clock().timestamp()
    ports.logins.take(f"address:{address}", _BY_ADDRESS, now=seconds)
    try:
        ports.logins.take(f"{_name_subject(typed)}@{address}", _BY_NAME_AND_ADDRESS, now=seconds)
        ports.logins.take(_name_subject(typed), _BY_NAME, now=seconds)
    except RateLimited as exc:
        text = (
            f"too many sign-ins to this account: retry in {exc.retry_after_seconds} seconds, "
            "or ask another operator to unlock it (payerbridge operators unlock)"
        )
        raise TooManyAttempts(text, retry_after_seconds=exc.retry_after_seconds) from exc
    operator = ports.accounts.get(name)
    matches = password_matches(operator.password_hash if operator else None, password)
    now = ports.clock()
    if operator is None or not matches or operator.is_disabled:
        reason = (
            "unknown-name"
            if operator is None
            else "disabled"
            if operator.is_disabled
            else "wrong-password"
        )
        with ports.transactions.begin() as unit:
            unit.record(
                _event(now, "console:anonymous", "console.login", typed, "failure", reason=reason)
            )
        raise Unauthenticated(_WRONG, issues=[Issue(_WRONG, "name", "login")])
    session = OperatorSession(token_digest(token), operator.name, now, now)
    with ports.transactions.begin() as unit:
        ports.accounts.open_session(unit, session)
        unit.record(
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
    return SignedIn(operator, session, csrf_token_of(token))


def _name_subject(typed: str) -> str:
    """The throttle's subject for a typed name (its digest): ``@<address>`` follows it in
    the bucket of one address."""
    return f"name:{typed}"


def unlock_operator(ports: OperatorPorts, name: str, *, actor: str) -> int:
    """Fill the sign-in buckets of ``name`` again (from every address): the way back in
    for an operator a guesser slowed. NotFound when there is no such account; how many
    buckets were emptied. Audited as ``operator.unlock``."""
    if ports.accounts.get(name) is None:
        raise _no_operator(name)
    if ports.buckets is None:
        raise RuntimeError("the sign-in buckets are not wired: nothing to unlock")
    forgotten = ports.buckets.forget_subject(_name_subject(name_digest(name)))
    with ports.transactions.begin() as unit:
        unit.record(_event(unit.now, actor, "operator.unlock", name, "success", buckets=forgotten))
    return forgotten


def session_of(ports: OperatorPorts, token: str) -> SignedIn:
    """The live session whose token this is, its last request recorded now (at most
    every ``touch_every``); Unauthenticated saying why when there is none."""
    found = ports.accounts.session(token_digest(token)) if token else None
    if found is None:
        raise _signed_out("signin")
    now = ports.clock()
    state = session_state(found, now, ports.sessions)
    operator = ports.accounts.get(found.operator)
    if state is SessionState.LIVE and (operator is None or operator.is_disabled):
        state = SessionState.ENDED
    if state is not SessionState.LIVE:
        raise _signed_out(state.value)
    assert operator is not None
    if now - found.last_seen_at >= ports.sessions.touch_every:
        with ports.transactions.begin() as unit:
            ports.accounts.touch_session(unit, found.token_hash)
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


def log_out(ports: OperatorPorts, signed_in: SignedIn) -> None:
    with ports.transactions.begin() as unit:
        if ports.accounts.end_session(unit, signed_in.session.token_hash):
            _record_logout(unit, signed_in)


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
