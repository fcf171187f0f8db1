"""Incremental onboardings, the pure parts: what ``since`` may be, the ``_since`` the
export is asked with, what an export reflects, what changed per member, and the end of a
member whose answer held nothing new."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.onboarding.increments import (
    LAST,
    changed_per_member,
    export_time,
    parse_since,
    since_asked,
    since_parameters,
)
from payerbridge.onboarding.model import OnboardingMember
from payerbridge.onboarding.results import member_reason
from payerbridge.types import ClientId, PartnerId
from tests.builders import a_coverage, a_patient

SINCE = datetime(2027, 3, 1, tzinfo=UTC)
BEFORE, AFTER = "2027-02-01T00:00:00Z", "2027-03-02T08:00:00Z"


def _at(resource: dict[str, Any], stamp: str) -> dict[str, Any]:
    return {**resource, "meta": {"lastUpdated": stamp}}


def test_since_is_last_or_a_fhir_instant_with_a_zone_and_anything_else_names_the_option() -> None:
    assert parse_since(None) is None
    assert parse_since("last") == LAST
    assert parse_since("2027-03-01T02:00:00+02:00") == datetime(2027, 3, 1, tzinfo=UTC)
    for bad in ("2027-03-01", "2027-03-01T00:00:00", "yesterday", "2027-13-01T00:00:00Z", ""):
        with pytest.raises(InvalidInput) as refused:
            parse_since(bad, name="--since")
        assert refused.value.text.startswith("--since must be a FHIR instant with a time zone")
        assert [issue.expression for issue in refused.value.issues] == ["--since"]


class _Runs:
    def __init__(self, last: datetime | None) -> None:
        self.last = last
        self.asked: list[tuple[str, str]] = []

    def last_received_at(self, client_id: ClientId, partner_id: PartnerId) -> datetime | None:
        self.asked.append((client_id, partner_id))
        return self.last


def test_last_is_what_the_clients_last_completed_run_with_the_partner_received() -> None:
    runs = _Runs(SINCE)
    client, partner = ClientId("ops"), PartnerId("old")
    assert since_asked(runs, client, partner, LAST) == SINCE
    assert runs.asked == [("ops", "old")]
    assert since_asked(runs, client, partner, None) is None
    given = datetime(2027, 1, 1, tzinfo=UTC)
    assert since_asked(runs, client, partner, given) == given
    with pytest.raises(InvalidInput, match="no completed onboarding with 'old' received data"):
        since_asked(_Runs(None), client, partner, LAST)


def test_the_export_is_asked_since_in_utc_and_not_at_all_without() -> None:
    assert since_parameters(None) == []
    assert since_parameters(SINCE) == [{"name": "_since", "valueInstant": "2027-03-01T00:00:00Z"}]


def test_an_export_reflects_its_transaction_time_or_else_when_it_was_received() -> None:
    received = datetime(2027, 3, 5, tzinfo=UTC)
    assert export_time({"transactionTime": "2027-03-04T10:00:00Z"}, received) == datetime(
        2027, 3, 4, 10, tzinfo=UTC
    )
    assert export_time({}, received) == received
    assert export_time({"transactionTime": "2027-03-04"}, received) == received


def test_what_changed_is_counted_per_member_its_provenance_and_shared_resources_left_out() -> None:
    resources = [
        _at(a_patient("p1"), BEFORE),  # PDex sends the Patient, changed or not
        _at(a_coverage("c1", patient="p1"), AFTER),
        a_coverage("c1b", patient="p1"),  # no lastUpdated: we cannot tell, so changed
        _at(a_patient("p2"), BEFORE),
        _at({"resourceType": "Provenance", "id": "pv", "target": [{"reference": "Patient/p2"}]},
            AFTER),
        _at({"resourceType": "Organization", "id": "org"}, AFTER),
        _at(a_coverage("c9", patient="p9"), AFTER),  # a stranger's
    ]  # fmt: skip
    assert changed_per_member(resources, {"p1": 0, "p2": 1, "p3": 2}, SINCE) == {
        0: 2,
        1: 0,
        2: 0,
    }


def test_a_matched_member_whose_answer_changed_nothing_ends_nothing_new() -> None:
    member = OnboardingMember(0, "N-1", "c", {}, "match", "p1", imported=2, changed=0)
    assert member_reason(member, SINCE) == {
        "code": "nothing-new",
        "text": "matched; the old payer has nothing new since 2027-03-01T00:00:00Z",
    }
    changed = OnboardingMember(0, "N-1", "c", {}, "match", "p1", imported=3, changed=1)
    assert member_reason(changed, SINCE) == {
        "code": "completed",
        "text": "matched; 3 resource(s) received and kept",
    }
    # A run asked since nothing: nothing is judged.
    whole = OnboardingMember(0, "N-1", "c", {}, "match", "p1", imported=2)
    assert member_reason(whole)["code"] == "completed"
