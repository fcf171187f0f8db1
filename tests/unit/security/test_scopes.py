"""Which scopes grant which: SMART v1 and v2 resource scopes, wildcards, contexts."""

from __future__ import annotations

import pytest

from payerbridge.errors import Forbidden
from payerbridge.security.model import (
    MEMBER_MATCH_SCOPE,
    OPERATOR_SCOPE,
    Principal,
    covers,
    require_scope,
    uncovered_scopes,
)
from payerbridge.types import ClientId


@pytest.mark.parametrize(
    ("allowed", "wanted", "granted"),
    [
        ("system/*.rs", "system/Patient.rs", True),
        ("system/*.rs", "system/Patient.r", True),
        ("system/*.read", "system/Coverage.rs", True),
        ("system/Patient.rs", "system/Coverage.rs", False),
        ("system/*.r", "system/Patient.rs", False),
        ("system/*.rs", "system/Patient.c", False),
        ("patient/*.rs", "system/Patient.rs", False),
        ("system/*.*", "system/Patient.cud", True),
        (MEMBER_MATCH_SCOPE, MEMBER_MATCH_SCOPE, True),
        ("system/*.rs", OPERATOR_SCOPE, False),
    ],
)
def test_covers(allowed: str, wanted: str, granted: bool) -> None:
    assert covers(allowed, wanted) is granted


def test_uncovered_scopes_are_named_in_order() -> None:
    allowed = frozenset({"system/*.rs"})
    wanted = frozenset({"system/Patient.rs", OPERATOR_SCOPE, "payerbridge/exchanges"})
    assert uncovered_scopes(allowed, wanted) == ["payerbridge/exchanges", OPERATOR_SCOPE]


def test_require_scope_refuses_with_what_would_do() -> None:
    principal = Principal(ClientId("a"), "1234567893", frozenset({"system/Patient.rs"}))
    require_scope(principal, "system/Patient.r")
    with pytest.raises(Forbidden, match="payerbridge/operator"):
        require_scope(principal, OPERATOR_SCOPE)
