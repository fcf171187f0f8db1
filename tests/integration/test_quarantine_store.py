"""The quarantine's store on a real database (SQLite, or PostgreSQL with
PAYERBRIDGE_TEST_BACKEND): held in the caller's unit of work, rolled back with it,
audited with it, after the unit's own DB-API statements."""

from __future__ import annotations

from typing import Any

import pytest

from payerbridge.backends.model import HeldIssue, SourceId, ToHold
from payerbridge.backends.quarantine import quarantine
from payerbridge.bootstrap import Platform
from payerbridge.store.unit_of_work import sql_unit

ISSUE = HeldIssue("http://example.org/p|1", "Patient.identifier", "cardinality", "0 found")


def _item(n: int, source: str = "s1") -> ToHold:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": f"p{n}"}
    return ToHold(SourceId(source), resource, (ISSUE,))


def test_a_hold_rolls_back_with_its_unit(platform: Platform) -> None:
    with pytest.raises(RuntimeError), platform.transactions.begin() as unit:
        quarantine(unit, platform.quarantine, [_item(1)], actor="test")
        raise RuntimeError("the mapping run failed")
    assert platform.quarantine.count() == 0


def test_held_after_the_units_own_statements_and_audited(platform: Platform) -> None:
    with platform.transactions.begin() as unit:
        sql_unit(unit).cursor().execute("SELECT 1").fetchall()  # a mapping run's statements
        held = quarantine(unit, platform.quarantine, [_item(1), _item(2, "s2")], actor="test")
    assert [h.resource_id for h in held] == ["p1", "p2"]
    assert held[0].seq < held[1].seq
    assert (
        platform.quarantine.count() == 2 and platform.quarantine.count(source=SourceId("s2")) == 1
    )
    listed = platform.quarantine.list(after=held[0].seq)
    assert [h.id for h in listed] == [held[1].id] and listed[0].resource is None
    one = platform.quarantine.get(held[0].id)
    assert one.resource == {"resourceType": "Patient", "id": "p1"} and one.issues == (ISSUE,)
    (event,) = platform.audit.for_entity("QuarantinedResource", held[1].id)
    assert event["action"] == "resource.quarantine"
