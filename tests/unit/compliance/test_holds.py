"""Who may release a legal hold (ADR 0046): the principal that placed it, or counsel the
plan names; anyone else is refused, nothing changes, and the refusal is audited."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.compliance.lifecycle import (
    Acting,
    EraseMember,
    HoldPolicy,
    PlaceHold,
    ReleaseHold,
    Retention,
    erase_member,
    place_hold,
    release_hold,
)
from payerbridge.compliance.model import Hold
from payerbridge.compliance.unit import ComplianceUnit
from payerbridge.errors import Conflict, Forbidden, LegalHoldActive, NotFound
from payerbridge.transactions import UnitOfWork
from tests.fakes import InMemoryAuditLog, InMemoryTransactions


class InMemoryHolds:
    """The holds' part of ``LifecycleStore``; erasure removes a member's one record."""

    def __init__(self) -> None:
        self.rows: dict[str, Hold] = {}
        self.members: set[str] = {"m-1"}

    def holds(self, unit: UnitOfWork, member_id: str) -> list[Hold]:
        return [h for h in self.rows.values() if h.member_id == member_id]

    def hold(self, unit: UnitOfWork, hold_id: str) -> Hold | None:
        return self.rows.get(hold_id)

    def add_hold(self, unit: UnitOfWork, hold: Hold) -> None:
        self.rows[hold.id] = hold

    def release_hold(self, unit: UnitOfWork, hold_id: str, *, by: str) -> Hold:
        hold = self.rows[hold_id]
        if hold.released_at is not None:
            raise Conflict(f"legal hold {hold_id} was released already")
        self.rows[hold_id] = dataclasses.replace(hold, released_by=by, released_at=unit.now)
        return self.rows[hold_id]

    def erase_member(self, unit: UnitOfWork, member_id: str) -> dict[str, int]:
        found = member_id in self.members
        self.members.discard(member_id)
        return {"fhir_resources": int(found)}

    def compact(self, tables: Iterable[str]) -> None:
        pass


_NO_COUNSEL = HoldPolicy()


def _lifecycle(
    policy: HoldPolicy = _NO_COUNSEL,
) -> tuple[ComplianceUnit, InMemoryHolds, InMemoryAuditLog]:
    """The compliance unit over the holds alone: the report's ports are not used here."""
    audit, store = InMemoryAuditLog(), InMemoryHolds()
    transactions = InMemoryTransactions(audit, store)
    week = Retention(timedelta(days=7), timedelta(days=7))
    uow = ComplianceUnit(transactions, store, policy, week, obligations=None, clock_reader=None)
    return uow, store, audit


_PRINCIPALS = st.builds(
    lambda kind, name: f"{kind}:{name}",
    st.sampled_from(["api", "cli", "console"]),
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
)


@given(placer=_PRINCIPALS, other=_PRINCIPALS, counsel=st.sets(_PRINCIPALS, max_size=3))
def test_only_the_placer_or_counsel_releases_a_hold(
    placer: str, other: str, counsel: set[str]
) -> None:
    uow, store, audit = _lifecycle(HoldPolicy(frozenset(counsel)))
    hold = place_hold(PlaceHold("m-1", Acting(placer, "a person"), "case"), uow)
    # The person named is recorded, never trusted: the same name from another principal
    # is another principal.
    acting = Acting(other, "a person")
    if other == placer or other in counsel:
        released = release_hold(ReleaseHold(hold.id, acting), uow)
        assert released.released_by == acting.label and released.released_at is not None
        assert audit.events[-1].outcome == "success"
        assert audit.events[-1].detail["as"] == ("placer" if other == placer else "counsel")
        return
    with pytest.raises(Forbidden) as refused:
        release_hold(ReleaseHold(hold.id, acting), uow)
    assert placer in refused.value.text and other in refused.value.text
    assert store.rows[hold.id].released_at is None
    assert (audit.events[-1].action, audit.events[-1].outcome) == ("member.hold-release", "failure")
    with pytest.raises(LegalHoldActive):
        erase_member(EraseMember("m-1", other, "request"), uow)
    assert store.members == {"m-1"}


def test_a_hold_without_its_principal_is_counsels_alone_and_says_so() -> None:
    uow, store, _ = _lifecycle()
    hold = place_hold(PlaceHold("m-1", Acting("cli:ops"), "case"), uow)
    store.rows[hold.id] = dataclasses.replace(hold, placed_by_principal=None)  # before 0046
    with pytest.raises(Forbidden) as refused:
        release_hold(ReleaseHold(hold.id, Acting("cli:ops")), uow)
    assert "PAYERBRIDGE_HOLD_COUNSEL" in refused.value.text
    uow = dataclasses.replace(uow, holds=HoldPolicy(frozenset({"console:legal"})))
    legal = Acting("console:legal")
    release_hold(ReleaseHold(hold.id, legal), uow)
    with pytest.raises(Conflict):
        release_hold(ReleaseHold(hold.id, legal), uow)
    with pytest.raises(NotFound):
        release_hold(ReleaseHold("nope", legal), uow)
    erase_member(EraseMember("m-1", "console:legal", "request"), uow)
    assert store.members == set()


def test_the_label_names_the_principal_first_and_is_bounded() -> None:
    assert Acting("api:plan", "jo").label == "api:plan (jo)"
    assert Acting("cli:ops", "cli:ops").label == "cli:ops"
    assert Acting("cli:ops").label == "cli:ops"
    assert len(Acting("api:plan", "x" * 500).label) == 200
