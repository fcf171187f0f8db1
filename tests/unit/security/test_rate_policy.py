"""The rates the configuration gives: guessing operations' own, those configured (which
replace them operation by operation), the default for the rest, and names refused
unless they are a method and a route template."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from payerbridge.config import Settings
from payerbridge.policies import rate_policy
from payerbridge.security.model import Rate

MEMBER_MATCH = "POST /fhir/Patient/$member-match"
BULK = "POST /fhir/Group/$bulk-member-match"


def test_the_guessing_operations_have_their_own_rates_by_default() -> None:
    policy = rate_policy(Settings())
    assert policy.rate_of(MEMBER_MATCH) == Rate(2, 30)  # 120 a minute
    assert policy.rate_of(BULK) == Rate(10 / 60, 5)
    assert policy.rate_of("GET /fhir/Patient/{patient_id}") == Rate(100, 200)


def test_configured_rates_replace_them_operation_by_operation() -> None:
    settings = Settings(
        rate_limits={
            MEMBER_MATCH: {"per_minute": 0, "burst": 1},
            "GET /exchanges": {"per_minute": 30, "burst": 3},
        },
        rate_limit_per_second=0,
    )
    policy = rate_policy(settings)
    assert policy.rate_of(MEMBER_MATCH) is None  # lifted
    assert policy.rate_of(BULK) == Rate(10 / 60, 5)  # kept
    assert policy.rate_of("GET /exchanges") == Rate(0.5, 3)
    assert policy.rate_of("GET /partners") is None  # no default


@pytest.mark.parametrize("name", ["$member-match", "post /fhir/x", "POST fhir/x", "POST /a b"])
def test_an_operation_is_named_by_its_method_and_route_template(name: str) -> None:
    with pytest.raises(ValidationError, match="method and route template"):
        Settings(rate_limits={name: {"per_minute": 1, "burst": 1}})
