"""The payer-to-payer window: five years of service dates, current care whatever its age,
and prior authorizations while active or pending or for a year after their last change."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from payerbridge.disclosure.window import PRE_AUTH_PERIOD, ExchangeWindow

NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
WINDOW = ExchangeWindow.at(NOW, years=5)


def resource(resource_type: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": "x", **fields}


def prior_auth(**fields: Any) -> dict[str, Any]:
    return resource(
        "ExplanationOfBenefit", use="preauthorization", **{"status": "active", **fields}
    )


def test_the_window_starts_five_years_before_the_request() -> None:
    assert WINDOW.service_since == date(2022, 3, 15)
    leap = ExchangeWindow.at(datetime(2028, 2, 29, tzinfo=UTC), years=5)
    assert leap.service_since == date(2023, 2, 28)


@pytest.mark.parametrize(
    ("record", "admitted"),
    [
        (resource("Encounter", period={"start": "2022-03-15", "end": "2022-03-15"}), True),
        (resource("Encounter", period={"start": "2022-03-01", "end": "2022-03-14"}), False),
        (resource("Encounter", period={"start": "2015-01-01"}), True),  # still open
        (resource("Observation", effectiveDateTime="2019-06-01T10:00:00Z"), False),
        (resource("Observation", effectiveDateTime="2023-06-01T10:00:00-05:00"), True),
        (resource("Observation", effectiveDateTime="2022"), True),  # may be late 2022
        (resource("Observation", effectiveDateTime="2022-02"), False),
        (resource("Observation", status="final"), True),  # no date to judge by
        (resource("Immunization", occurrenceDateTime="2010-09-01"), False),
        (
            resource(
                "ExplanationOfBenefit",
                use="claim",
                billablePeriod={"start": "2021-12-20", "end": "2021-12-31"},
                item=[{"servicedDate": "2022-04-02"}],
            ),
            True,  # one line of the claim was served inside the window
        ),
        (
            resource(
                "ExplanationOfBenefit",
                use="claim",
                billablePeriod={"start": "2020-01-01", "end": "2020-01-02"},
            ),
            False,
        ),
        (resource("Patient"), True),
        (resource("Organization"), True),
    ],
)
def test_a_record_is_in_the_window_by_its_latest_service_date(
    record: dict[str, Any], admitted: bool
) -> None:
    assert WINDOW.admits(record) is admitted


def test_current_care_goes_whatever_its_age() -> None:
    active = {"coding": [{"code": "active"}]}
    resolved = {"coding": [{"code": "resolved"}]}
    assert WINDOW.admits(resource("Condition", clinicalStatus=active, onsetDateTime="2009"))
    assert not WINDOW.admits(resource("Condition", clinicalStatus=resolved, onsetDateTime="2009"))
    assert WINDOW.admits(resource("MedicationRequest", status="active", authoredOn="2014-01-01"))
    assert not WINDOW.admits(
        resource("MedicationRequest", status="completed", authoredOn="2014-01-01")
    )
    assert WINDOW.admits(resource("Coverage", status="active", period={"start": "2012-01-01"}))


def test_prior_authorizations_go_while_pending_or_in_effect() -> None:
    old = {"meta": {"lastUpdated": "2024-01-01T00:00:00Z"}}
    assert WINDOW.admits(prior_auth(outcome="queued", **old))
    in_effect = [{"extension": [{"url": PRE_AUTH_PERIOD, "valuePeriod": {"end": "2027-06-30"}}]}]
    assert WINDOW.admits(prior_auth(outcome="complete", item=in_effect, **old))
    ended = [{"extension": [{"url": PRE_AUTH_PERIOD, "valuePeriod": {"end": "2026-06-30"}}]}]
    assert not WINDOW.admits(prior_auth(outcome="complete", item=ended, **old))
    assert WINDOW.admits(prior_auth(outcome="complete", preAuthRefPeriod=[{"end": "2028"}], **old))


def test_a_prior_authorization_that_changed_in_the_last_year_goes_whatever_its_state() -> None:
    changed = {"meta": {"lastUpdated": "2026-09-01T00:00:00Z"}}
    assert WINDOW.admits(prior_auth(status="cancelled", outcome="complete", **changed))
    stale = {"meta": {"lastUpdated": "2025-09-01T00:00:00Z"}}
    assert not WINDOW.admits(prior_auth(status="cancelled", outcome="complete", **stale))
    assert not WINDOW.admits(prior_auth(status="entered-in-error", outcome="queued", **changed))
    # Its service dates do not count: a prior authorization is judged by its own rule.
    recent = {"billablePeriod": {"start": "2026-01-01", "end": "2026-01-02"}}
    assert not WINDOW.admits(prior_auth(outcome="complete", **stale, **recent))
