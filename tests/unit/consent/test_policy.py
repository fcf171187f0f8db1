"""The consent decision: every reason, their order, the period boundaries and time zones."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.consent import (
    POLICY_VERSION,
    ConsentDecision,
    ConsentPolicy,
    ConsentRecord,
    DenyReason,
    Purpose,
    Requester,
    evaluate,
    reason_text,
    revoke,
)
from payerbridge.consent.model import ConsentId, ConsentRequest, end_of_day, start_of_day
from payerbridge.consent.policy import decide_among, effective_policy
from payerbridge.types import ClientId, MemberId

NEW_YORK = ZoneInfo("America/New_York")
OUR_NPI = "1245319599"
THEIR_NPI = "1234567893"
MEMBER = MemberId("member-1")
REQUESTER = Requester(ClientId("client-new-plan"), THEIR_NPI)
START = start_of_day(date(2026, 1, 1), NEW_YORK)
END = end_of_day(date(2026, 12, 31), NEW_YORK)
INSIDE = datetime(2026, 6, 1, 12, tzinfo=UTC)
REGULAR, SENSITIVE = ConsentPolicy.REGULAR, ConsentPolicy.SENSITIVE


def a_consent(**changes: Any) -> ConsentRecord:
    consent = ConsentRecord(
        consent_id=ConsentId("consent-1"),
        member_id=MEMBER,
        policy=SENSITIVE,
        period_start=START,
        period_end=END,
        source_npi=OUR_NPI,
        recipient_npis=(THEIR_NPI,),
        client_id=REQUESTER.client_id,
        performer="Patient/1",
        resource_hash="0" * 64,
        policy_version=POLICY_VERSION,
    )
    return dataclasses.replace(consent, **changes)


def decide(consent: ConsentRecord | None = None, **overrides: Any) -> ConsentDecision:
    arguments: dict[str, Any] = {
        "member_id": MEMBER,
        "requester": REQUESTER,
        "purpose": Purpose.PAYER_TO_PAYER,
        "at_time": INSIDE,
        "data_scope": SENSITIVE,
        "source_npi": OUR_NPI,
    }
    arguments.update(overrides)
    return evaluate(consent or a_consent(), ConsentRequest(**arguments))


def reason(consent: ConsentRecord | None = None, **overrides: Any) -> DenyReason | None:
    return decide(consent, **overrides).reason


# -- permit


def test_a_consent_in_force_permits_with_its_policy_and_version() -> None:
    decision = decide()
    assert decision.permitted and decision.reason is None
    assert decision.policy is SENSITIVE
    assert decision.policy_version == POLICY_VERSION == "consent-policy/1"
    assert "all data" in decision.text


@pytest.mark.parametrize(
    ("consent_policy", "scope", "effective"),
    [
        (SENSITIVE, SENSITIVE, SENSITIVE),
        (SENSITIVE, REGULAR, REGULAR),
        (REGULAR, REGULAR, REGULAR),
        (REGULAR, SENSITIVE, REGULAR),  # permitted, but the caller must segment
    ],
)
def test_the_permit_carries_the_narrower_policy(
    consent_policy: ConsentPolicy, scope: ConsentPolicy, effective: ConsentPolicy
) -> None:
    decision = decide(a_consent(policy=consent_policy), data_scope=scope)
    assert decision.permitted and decision.policy is effective
    assert effective_policy(consent_policy, scope) is effective


def test_plain_strings_are_accepted_for_policy_scope_and_purpose() -> None:
    decision = decide(a_consent(policy="regular"), data_scope="sensitive", purpose="payer-to-payer")
    assert decision.permitted and decision.policy is REGULAR


# -- every reason


@pytest.mark.parametrize(
    ("consent_changes", "overrides", "expected"),
    [
        ({"period_end": START - timedelta(days=1)}, {}, DenyReason.MALFORMED),
        ({}, {"at_time": datetime(2027, 6, 1, tzinfo=UTC)}, DenyReason.EXPIRED),
        ({}, {"at_time": datetime(2025, 6, 1, tzinfo=UTC)}, DenyReason.NOT_YET_VALID),
        (
            {"revoked_at": INSIDE - timedelta(hours=1), "revoked_by": "member"},
            {},
            DenyReason.REVOKED,
        ),
        (
            {},
            {"requester": Requester(ClientId("other"), "1679576722")},
            DenyReason.RECIPIENT_MISMATCH,
        ),
        ({}, {"source_npi": "1679576722"}, DenyReason.SOURCE_MISMATCH),
        (
            {"policy": REGULAR},
            {"supported_policies": frozenset({SENSITIVE})},
            DenyReason.POLICY_UNSUPPORTED,
        ),
        ({}, {"member_id": MemberId("member-2")}, DenyReason.MEMBER_MISMATCH),
    ],
)
def test_every_reason_is_reached(
    consent_changes: dict[str, Any], overrides: dict[str, Any], expected: DenyReason
) -> None:
    decision = decide(a_consent(**consent_changes), **overrides)
    assert not decision.permitted
    assert decision.reason is expected
    assert decision.policy is None
    assert decision.text.startswith(reason_text(expected))
    assert decision.policy_version == POLICY_VERSION


def test_the_reason_codes_are_the_issue_s_and_no_consent() -> None:
    # The eight of the issue, which ``evaluate`` decides, plus ``no-consent`` when the
    # lookup finds nothing (``decide_among``).
    assert {reason.value for reason in DenyReason} == {
        "expired",
        "not-yet-valid",
        "revoked",
        "recipient-mismatch",
        "source-mismatch",
        "policy-unsupported",
        "member-mismatch",
        "malformed",
        "no-consent",
    }


@pytest.mark.parametrize("deny_reason", list(DenyReason))
def test_every_reason_has_an_actionable_sentence_without_member_data(
    deny_reason: DenyReason,
) -> None:
    text = reason_text(deny_reason)
    assert text.endswith(".") and len(text) > 40
    assert MEMBER not in text and "Patient/" not in text


@pytest.mark.parametrize(
    ("consent_changes", "overrides", "detail"),
    [
        ({"policy": "everything"}, {}, "policy"),
        ({"period_start": datetime(2026, 1, 1)}, {}, "timezone-aware"),
        ({"period_end": datetime(2026, 12, 31)}, {}, "timezone-aware"),
        ({"revoked_at": datetime(2026, 3, 1)}, {}, "revocation"),
        ({"recipient_npis": ()}, {}, "recipient"),
        ({"source_npi": ""}, {}, "source"),
        ({"member_id": MemberId("")}, {}, "member"),
        ({}, {"purpose": "marketing"}, "purpose"),
        ({}, {"purpose": "TREAT"}, "purpose"),
        ({}, {"data_scope": "everything"}, "data scope"),
    ],
)
def test_malformed_names_what_is_wrong_but_no_value(
    consent_changes: dict[str, Any], overrides: dict[str, Any], detail: str
) -> None:
    decision = decide(a_consent(**consent_changes), **overrides)
    assert decision.reason is DenyReason.MALFORMED
    assert detail in decision.text
    assert "marketing" not in decision.text and "everything" not in decision.text


def test_a_naive_evaluation_time_is_a_bug_not_a_denial() -> None:
    with pytest.raises(ValueError, match="at_time must be timezone-aware"):
        decide(at_time=datetime(2026, 6, 1, 12))


# -- order


WRONG_EVERYTHING = {
    "member_id": MemberId("member-2"),
    "source_npi": "1679576722",
    "requester": Requester(ClientId("other"), "1679576722"),
    "at_time": datetime(2027, 6, 1, tzinfo=UTC),
    "supported_policies": frozenset(),
}


def test_checks_run_in_the_documented_order() -> None:
    consent = a_consent(revoked_at=START, revoked_by="member")
    overrides = dict(WRONG_EVERYTHING)
    seen = []
    for fix in ("member_id", "source_npi", "requester", "revoked", "supported_policies"):
        seen.append(reason(consent, **overrides))
        if fix == "revoked":
            consent = dataclasses.replace(consent, revoked_at=None, revoked_by=None)
        else:
            overrides.pop(fix)
    seen.append(reason(consent, **overrides))  # only the period is wrong now
    seen.append(reason(consent, **{**overrides, "at_time": START - timedelta(days=1)}))
    assert seen == [
        DenyReason.MEMBER_MISMATCH,
        DenyReason.SOURCE_MISMATCH,
        DenyReason.RECIPIENT_MISMATCH,
        DenyReason.REVOKED,
        DenyReason.POLICY_UNSUPPORTED,
        DenyReason.EXPIRED,
        DenyReason.NOT_YET_VALID,
    ]


def test_malformed_comes_before_everything() -> None:
    assert reason(a_consent(recipient_npis=()), **WRONG_EVERYTHING) is DenyReason.MALFORMED


def test_revocation_outranks_the_period_and_the_policy_from_its_instant() -> None:
    consent = a_consent(revoked_at=END + timedelta(days=5), revoked_by="member")
    late = END + timedelta(days=10)
    assert reason(consent, at_time=late, supported_policies=frozenset()) is DenyReason.REVOKED
    assert reason(consent, at_time=END + timedelta(days=1)) is DenyReason.EXPIRED


# -- revocation


def test_a_revocation_takes_effect_at_its_exact_instant() -> None:
    revoked_at = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
    consent = revoke(a_consent(), at=revoked_at, by="member")
    assert decide(consent, at_time=revoked_at - timedelta(microseconds=1)).permitted
    assert reason(consent, at_time=revoked_at) is DenyReason.REVOKED
    assert reason(consent, at_time=revoked_at + timedelta(days=30)) is DenyReason.REVOKED


def test_a_revocation_compares_instants_across_zones() -> None:
    consent = revoke(a_consent(), at=datetime(2026, 6, 1, 8, tzinfo=NEW_YORK), by="member")
    assert decide(consent, at_time=datetime(2026, 6, 1, 11, 59, tzinfo=UTC)).permitted
    assert reason(consent, at_time=datetime(2026, 6, 1, 12, tzinfo=UTC)) is DenyReason.REVOKED


def test_revoke_records_who_and_keeps_the_first_revocation() -> None:
    first = revoke(a_consent(), at=INSIDE, by="member")
    assert (first.revoked_at, first.revoked_by) == (INSIDE, "member")
    assert revoke(first, at=INSIDE + timedelta(days=1), by="operator:ops-1") is first
    earlier = revoke(first, at=INSIDE - timedelta(days=1), by="operator:ops-1")
    assert earlier.revoked_at == INSIDE - timedelta(days=1)


@pytest.mark.parametrize(
    ("at", "by", "message"),
    [(datetime(2026, 6, 1), "member", "timezone-aware"), (INSIDE, " ", "who revoked")],
)
def test_revoke_refuses_a_naive_time_or_no_author(at: datetime, by: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        revoke(a_consent(), at=at, by=by)


# -- period boundaries


def test_the_period_start_is_inclusive_to_the_microsecond() -> None:
    assert decide(at_time=START).permitted
    assert reason(at_time=START - timedelta(microseconds=1)) is DenyReason.NOT_YET_VALID


def test_the_period_end_is_inclusive_to_the_microsecond() -> None:
    assert decide(at_time=END).permitted
    assert reason(at_time=END + timedelta(microseconds=1)) is DenyReason.EXPIRED


def test_a_date_only_period_covers_whole_days_in_the_configured_zone() -> None:
    # 2026-01-01 in New York starts at 05:00Z; 2026-12-31 ends just before 2027-01-01T05:00Z.
    assert datetime(2026, 1, 1, 5, tzinfo=UTC) == START
    assert datetime(2027, 1, 1, 5, tzinfo=UTC) - timedelta(microseconds=1) == END
    assert reason(at_time=datetime(2026, 1, 1, 4, 59, 59, tzinfo=UTC)) is (DenyReason.NOT_YET_VALID)
    assert decide(at_time=datetime(2027, 1, 1, 4, 59, 59, 999999, tzinfo=UTC)).permitted
    assert reason(at_time=datetime(2027, 1, 1, 5, tzinfo=UTC)) is DenyReason.EXPIRED
    # The same local calendar day, seen from Los Angeles, is still in force.
    los_angeles = ZoneInfo("America/Los_Angeles")
    assert decide(at_time=datetime(2026, 12, 31, 23, 59, 59, tzinfo=NEW_YORK)).permitted
    assert decide(at_time=datetime(2026, 12, 31, 20, 59, 59, tzinfo=los_angeles)).permitted


def test_a_datetime_end_with_an_offset_is_compared_as_an_instant() -> None:
    end = datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))
    consent = a_consent(period_end=end)
    assert decide(consent, at_time=datetime(2027, 1, 1, 4, 59, 59, tzinfo=UTC)).permitted
    assert reason(consent, at_time=datetime(2027, 1, 1, 4, 0, 0, tzinfo=UTC)) is None
    assert reason(consent, at_time=end + timedelta(microseconds=1)) is DenyReason.EXPIRED
    tokyo = timezone(timedelta(hours=9))
    assert reason(consent, at_time=datetime(2027, 1, 1, 14, 0, 0, tzinfo=tokyo)) is (
        DenyReason.EXPIRED
    )


def test_days_that_change_clocks_end_at_the_next_midnight() -> None:
    # 2026-03-08 has 23 hours in New York, 2026-11-01 has 25.
    assert end_of_day(date(2026, 3, 8), NEW_YORK) == datetime(2026, 3, 9, 4, tzinfo=UTC) - (
        timedelta(microseconds=1)
    )
    assert end_of_day(date(2026, 11, 1), NEW_YORK) == datetime(2026, 11, 2, 5, tzinfo=UTC) - (
        timedelta(microseconds=1)
    )
    assert start_of_day(date(2026, 11, 1), NEW_YORK) == datetime(2026, 11, 1, 4, tzinfo=UTC)


def test_a_single_day_consent_is_in_force_all_that_day() -> None:
    day = date(2026, 7, 4)
    first, last = start_of_day(day, NEW_YORK), end_of_day(day, NEW_YORK)
    consent = a_consent(period_start=first, period_end=last)
    assert decide(consent, at_time=datetime(2026, 7, 4, 0, 0, tzinfo=NEW_YORK)).permitted
    assert decide(consent, at_time=datetime(2026, 7, 4, 23, 59, 59, tzinfo=NEW_YORK)).permitted
    assert reason(consent, at_time=datetime(2026, 7, 5, 0, 0, tzinfo=NEW_YORK)) is (
        DenyReason.EXPIRED
    )


instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2029, 1, 1), timezones=st.just(UTC)
)


@given(at=instants, revoked=st.one_of(st.none(), instants))
def test_the_decision_agrees_with_the_period_and_revocation(
    at: datetime, revoked: datetime | None
) -> None:
    consent = a_consent(revoked_at=revoked, revoked_by="member" if revoked else None)
    decision = decide(consent, at_time=at)
    in_force = START <= at <= END and (revoked is None or at < revoked)
    assert decision.permitted is in_force
    if not in_force:
        expected = (
            DenyReason.REVOKED
            if revoked is not None and at >= revoked
            else DenyReason.NOT_YET_VALID
            if at < START
            else DenyReason.EXPIRED
        )
        assert decision.reason is expected


@pytest.mark.parametrize(
    "room", ["payerbridge.consent", "payerbridge.consent.segmentation", "payerbridge.consent.hrex"]
)
def test_the_public_surface_names_exist(room: str) -> None:
    module = importlib.import_module(room)
    assert module.__all__
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


# -- decide_among: every consent on file for the member


def among(*consents: ConsentRecord, **overrides: Any) -> tuple[ConsentDecision, Any]:
    arguments: dict[str, Any] = {
        "member_id": MEMBER,
        "requester": REQUESTER,
        "purpose": Purpose.PAYER_TO_PAYER,
        "at_time": INSIDE,
        "data_scope": SENSITIVE,
        "source_npi": OUR_NPI,
    }
    arguments.update(overrides)
    return decide_among(list(consents), ConsentRequest(**arguments))


def test_no_consent_on_file_is_no_consent() -> None:
    decision, chosen = among()
    assert decision.reason is DenyReason.NO_CONSENT and chosen is None


def test_a_renewed_consent_permits_though_the_older_one_expired() -> None:
    expired = a_consent(consent_id=ConsentId("old"), period_end=INSIDE - timedelta(days=1))
    renewed = a_consent(consent_id=ConsentId("new"))
    decision, chosen = among(expired, renewed)
    assert decision.permitted and chosen.consent_id == "new"


def test_the_reason_is_the_newest_consent_that_names_the_requester() -> None:
    revoked = a_consent(
        consent_id=ConsentId("newest"), revoked_at=INSIDE - timedelta(hours=1), revoked_by="member"
    )
    expired = a_consent(consent_id=ConsentId("older"), period_end=INSIDE - timedelta(days=1))
    decision, chosen = among(revoked, expired)
    assert decision.reason is DenyReason.REVOKED and chosen.consent_id == "newest"


def test_another_requester_s_consent_reads_as_no_consent() -> None:
    # A requester never learns the state of a consent the member gave someone else.
    theirs = a_consent(recipient_npis=("1679576722",), revoked_at=INSIDE, revoked_by="m")
    decision, _ = among(theirs)
    assert decision.reason is DenyReason.NO_CONSENT
