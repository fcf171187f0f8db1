"""Provider Access's core (ADR 0059): attribution and opt-outs judged day by day against
oracles written another way. The one failure that matters: a member's data reaching a
provider she is not attributed to that day, or one she opted out of."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.provider_access.groups import ProviderGroup, holding, provider_group
from payerbridge.provider_access.model import (
    Attribution,
    AttributionBasis,
    Choice,
    OptOutChoice,
    OptOutScope,
    ServiceFact,
    attributed_members,
    derive_attributions,
    is_opted_out,
    members_for_provider,
)
from payerbridge.types import MemberId

PROVIDERS = ("1234567893", "1245319599", "1679576722")
MEMBERS = tuple(MemberId(f"m{i}") for i in range(5))
EPOCH = date(2025, 1, 1)
days = st.integers(0, 120).map(lambda n: EPOCH + timedelta(days=n))

facts = st.lists(
    st.builds(ServiceFact, st.sampled_from(MEMBERS), st.sampled_from(PROVIDERS), days),
    max_size=25,
)


@st.composite
def rosters(draw: st.DrawFn) -> list[Attribution]:
    found = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(days)
        end = start + timedelta(days=draw(st.integers(0, 40)))
        npi, member = draw(st.sampled_from(PROVIDERS)), draw(st.sampled_from(MEMBERS))
        found.append(Attribution(npi, member, start, end, AttributionBasis.ROSTER, "r"))
    return found


@st.composite
def choices(draw: st.DrawFn) -> list[OptOutChoice]:
    found = []
    for seq in range(draw(st.integers(0, 8))):
        scope = draw(st.sampled_from(list(OptOutScope)))
        specific = scope is OptOutScope.PROVIDER_SPECIFIC
        found.append(
            OptOutChoice(
                draw(st.sampled_from(MEMBERS)),
                draw(st.sampled_from(list(Choice))),
                scope,
                datetime.combine(draw(days), datetime.min.time(), UTC),
                seq + 1,
                draw(st.sampled_from(PROVIDERS)) if specific else None,
            )
        )
    return found


def _served_within(facts: list[ServiceFact], npi: str, day: date, look_back: int) -> set[str]:
    """The oracle: a member is attributed on ``day`` when the provider served her in the
    ``look_back`` days up to it."""
    return {
        f.member_id
        for f in facts
        if f.provider_npi == npi and f.served_on <= day <= f.served_on + timedelta(look_back)
    }


@settings(max_examples=60, deadline=None)
@given(facts, st.integers(0, 60))
def test_claims_attribute_a_member_exactly_on_the_days_within_the_look_back(
    found: list[ServiceFact], look_back: int
) -> None:
    attributions = derive_attributions(found, look_back_days=look_back)
    for day in (EPOCH + timedelta(days=n) for n in range(0, 200, 3)):
        for npi in PROVIDERS:
            assert attributed_members(attributions, npi, day) == _served_within(
                found, npi, day, look_back
            )
    # One provider and member's spans never overlap or touch: they were merged.
    spans: dict[tuple[str, str], list[Attribution]] = {}
    for a in attributions:
        spans.setdefault((a.provider_npi, a.member_id), []).append(a)
    for listed in spans.values():
        for earlier, later in zip(listed, listed[1:], strict=False):
            assert earlier.end + timedelta(days=1) < later.start


def _oracle_opted_out(listed: list[OptOutChoice], npi: str, at: datetime) -> bool:
    """Said another way: out of everyone if the last wide choice in force is an
    opt-out; out of ``npi`` if the last choice that settles ``npi`` alone (its own, or a
    wide opt-in) is its own opt-out."""
    in_force = sorted((c for c in listed if c.effective <= at), key=lambda c: (c.effective, c.seq))
    wide = [c for c in in_force if c.scope is not OptOutScope.PROVIDER_SPECIFIC]
    own = [
        c for c in in_force if c.provider_npi == npi or (c in wide and c.choice is Choice.OPT_IN)
    ]
    wide_out = bool(wide) and wide[-1].choice is Choice.OPT_OUT
    own_out = bool(own) and own[-1].provider_npi == npi and own[-1].choice is Choice.OPT_OUT
    return wide_out or own_out


@settings(max_examples=80, deadline=None)
@given(facts, rosters(), choices(), st.integers(0, 60))
def test_no_member_goes_to_a_provider_unattributed_that_day_or_opted_out_of(
    found: list[ServiceFact],
    roster: list[Attribution],
    made: list[OptOutChoice],
    look_back: int,
) -> None:
    attributions = derive_attributions(found, look_back_days=look_back) + roster
    by_member: dict[MemberId, list[OptOutChoice]] = {}
    for choice in made:
        by_member.setdefault(choice.member_id, []).append(choice)
    for day in (EPOCH + timedelta(days=n) for n in range(0, 200, 7)):
        at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
        for npi in PROVIDERS:
            going = members_for_provider(attributions, by_member, npi, day=day, at=at)
            expected = {
                m
                for m in _served_within(found, npi, day, look_back)
                | {a.member_id for a in roster if a.provider_npi == npi and a.holds_on(day)}
                if not _oracle_opted_out(by_member.get(m, []), npi, at)
            }
            assert set(going) == expected


def test_a_wide_opt_out_is_not_ended_by_one_providers_opt_in() -> None:
    at = datetime(2025, 3, 1, tzinfo=UTC)
    member = MEMBERS[0]
    made = [
        OptOutChoice(member, Choice.OPT_OUT, OptOutScope.PROVIDER_CATEGORY, at, 1),
        OptOutChoice(member, Choice.OPT_IN, OptOutScope.PROVIDER_SPECIFIC, at, 2, PROVIDERS[0]),
    ]
    assert is_opted_out(made, PROVIDERS[0], at + timedelta(days=1))
    assert not is_opted_out(made, PROVIDERS[0], at - timedelta(days=1))
    back_in = [*made, OptOutChoice(member, Choice.OPT_IN, OptOutScope.GLOBAL, at, 3)]
    assert not is_opted_out(back_in, PROVIDERS[1], at)


def test_a_choice_names_a_provider_exactly_when_it_is_provider_specific() -> None:
    at = datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="names one provider"):
        OptOutChoice(MEMBERS[0], Choice.OPT_OUT, OptOutScope.PROVIDER_SPECIFIC, at, 1)
    with pytest.raises(ValueError, match="names one provider"):
        OptOutChoice(MEMBERS[0], Choice.OPT_OUT, OptOutScope.GLOBAL, at, 1, PROVIDERS[0])


@settings(max_examples=25, deadline=None)
@given(facts, st.integers(0, 60), st.integers(0, 3))
def test_every_provider_group_meets_pdex_provider_group(
    found: list[ServiceFact], look_back: int, opted_out: int
) -> None:
    attributions = derive_attributions(found, look_back_days=look_back)
    day = EPOCH + timedelta(days=30)
    members = attributed_members(attributions, PROVIDERS[0], day)
    group = ProviderGroup(
        PROVIDERS[0], day, holding(attributions, members, day), opted_out, "Plan", PROVIDERS[1]
    )
    body = provider_group(group, updated=datetime(2025, 2, 1, tzinfo=UTC))
    assert ProfileChecker.bundled().check(body) == []
    assert {m["entity"]["reference"] for m in body["member"]} == {f"Patient/{m}" for m in members}
    assert body["quantity"] == len(members)
