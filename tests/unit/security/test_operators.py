"""Operator accounts (pure): the roles' permissions, names and passwords, argon2id
hashes, session tokens and when a session ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.security.model import PERMISSIONS, Operator, OperatorSession, Permission, Role
from payerbridge.security.operators import (
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

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_every_role_reads_and_no_duty_is_held_by_two_roles() -> None:
    assert all(Permission.READ in granted for granted in PERMISSIONS.values())
    assert PERMISSIONS[Role.VIEWER] == {Permission.READ}
    duties = [granted - {Permission.READ} for granted in PERMISSIONS.values()]
    held = [duty for granted in duties for duty in granted]
    assert sorted(held) == sorted(set(held)) == sorted(set(Permission) - {Permission.READ})
    operator = Operator("ann", Role.AUDITOR, "x", NOW, NOW)
    assert operator.may(Permission.AUDIT) and not operator.may(Permission.INTERVENE)


@pytest.mark.parametrize("name", ["a", "Ann", "1ann", "ann smith", "ann@plan", "a" * 65, ""])
def test_a_name_outside_the_rule_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="is not an account name"):
        check_name(name)


def test_a_name_inside_the_rule_is_kept() -> None:
    assert check_name("ann.smith-2_x") == "ann.smith-2_x"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "at least 12"),
        ("x" * 257, "at most 256"),
        ("Ann.Smith-Two", "not the account's name"),
    ],
)
def test_a_weak_password_is_refused_saying_why(password: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_password(password, name="ann.smith-two")


def test_a_password_matches_its_argon2id_hash_only() -> None:
    encoded = hash_password("correct horse battery")
    assert encoded.startswith("$argon2id$") and "correct" not in encoded
    assert password_matches(encoded, "correct horse battery")
    assert not password_matches(encoded, "correct horse battery!")
    assert not password_matches(None, "correct horse battery")  # no account: the decoy
    assert not password_matches("not a hash", "correct horse battery")


def test_what_is_kept_of_a_token_tells_nothing_of_it_or_of_its_csrf_token() -> None:
    token = "a-session-token"
    assert token not in token_digest(token) and len(token_digest(token)) == 64
    assert csrf_token_of(token) not in (token, token_digest(token))
    assert csrf_token_of(token) != csrf_token_of("another-token")
    assert name_digest(" Ann ") == name_digest("ann") != name_digest("bob")


POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


@pytest.mark.parametrize(
    ("created", "seen", "ended", "state"),
    [
        (timedelta(hours=1), timedelta(minutes=29), None, SessionState.LIVE),
        (timedelta(hours=1), timedelta(minutes=30), None, SessionState.IDLE),
        (timedelta(hours=12), timedelta(0), None, SessionState.EXPIRED),
        (timedelta(minutes=1), timedelta(0), timedelta(0), SessionState.ENDED),
    ],
)
def test_a_session_lives_until_idle_too_long_too_old_or_ended(
    created: timedelta, seen: timedelta, ended: timedelta | None, state: SessionState
) -> None:
    session = OperatorSession(
        "h", "ann", NOW - created, NOW - seen, None if ended is None else NOW - ended
    )
    assert session_state(session, NOW, POLICY) is state
