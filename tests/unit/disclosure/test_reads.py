"""The disclosure path's reads of a resource give exactly what the walks they replaced
gave: every reference in the same order, the same window decision, the same line
released for a download."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.everything import ReleaseTerms, released_now, released_on_page
from payerbridge.disclosure.release import shared_references
from payerbridge.disclosure.search import span_of
from payerbridge.disclosure.window import (
    _CURRENT,
    _SERVICE_DATES,
    PRE_AUTH_PERIOD,
    ExchangeWindow,
    is_prior_authorization,
)
from payerbridge.fhir.resources import iter_references
from payerbridge.json_paths import values_at
from payerbridge.store.members import with_meta

# -- the walks as they were, to compare against


def stacked_references(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                if key == "reference" and isinstance(value, str):
                    yield value
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(current, list):
            stack.extend(item for item in current if isinstance(item, (dict, list)))


def admitted_by_latest_date(window: ExchangeWindow, resource: Mapping[str, Any]) -> bool:
    if is_prior_authorization(resource):
        return window.admits(resource)  # unchanged: read as before
    resource_type = str(resource.get("resourceType"))
    current = _CURRENT.get(resource_type)
    if current is not None:
        path, codes = current
        if codes.intersection(str(v) for v in values_at(resource, path)):
            return True
    ends = [
        span[1]
        for path in _SERVICE_DATES.get(resource_type, ())
        for v in values_at(resource, path)
        if (span := span_of(v))
    ]
    latest = max(ends, default=None)
    return latest is None or latest > datetime.combine(window.service_since, time.min, UTC)


class Tagged(dict[str, Any]):
    """A dict subclass, as a caller might pass."""


class Text(str):
    """A str subclass, as a caller might pass."""


REFERENCES = st.sampled_from(
    ["Organization/o1", "Medication/m1", "Patient/p1", "Location/l/x", "#c", "Practitioner/d1"]
)
TREES = st.recursive(
    st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), REFERENCES),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["reference", "a", "b", "contained"]), inner, max_size=3),
        st.builds(lambda r: {"reference": r}, REFERENCES),
        st.builds(lambda r: Tagged(reference=Text(r)), REFERENCES),
        st.builds(lambda items: tuple(items), st.lists(inner, max_size=2)),
    ),
    max_leaves=15,
)


# -- references


@given(TREES)
@settings(max_examples=400)
def test_every_reference_is_found_in_the_order_the_stack_walk_found_it(node: Any) -> None:
    assert list(iter_references(node)) == list(stacked_references(node))


def test_references_in_contained_resources_lists_and_subclasses_are_found_tuples_are_not() -> None:
    resource = {
        "resourceType": "ExplanationOfBenefit",
        "provider": {"reference": "Organization/o1"},
        "contained": [{"resourceType": "Medication", "manufacturer": {"reference": "#org"}}],
        "item": [[{"reference": "Location/l1"}], Tagged(reference=Text("Practitioner/d1"))],
        "extension": ({"reference": "Organization/hidden"},),
        "reference": {"reference": "Medication/m1"},
        "count": 3,
        "flag": True,
    }
    assert list(iter_references(resource)) == list(stacked_references(resource))
    assert set(shared_references(resource)) == {
        "Organization/o1",
        "Location/l1",
        "Practitioner/d1",
        "Medication/m1",
    }


# -- the payer-to-payer window

NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
DATES = st.sampled_from(
    [
        "2022-03-15",
        "2022-03-14",
        "2022",
        "2021",
        "2022-02",
        "2022-03",
        "2030-01-01",
        "2019-06-01T10:00:00Z",
        "2022-03-15T00:00:00+05:00",
        "2022-03-14T23:59:59-05:00",
        "2022-03-15T10:00:00",  # no zone: no span
        "not a date",
    ]
)
DATED = st.one_of(
    DATES,
    st.fixed_dictionaries({}, optional={"start": DATES, "end": DATES}),
    st.lists(DATES, max_size=2),
    st.integers(),
)
TYPES = st.sampled_from([*_SERVICE_DATES, "Patient", "Organization", "Provenance"])


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    resource_type = draw(TYPES)
    resource: dict[str, Any] = {"resourceType": resource_type, "id": "x"}
    for path in draw(st.lists(st.sampled_from(_SERVICE_DATES.get(resource_type, ("x",))))):
        head, _, rest = path.partition(".")
        resource[head] = {rest: draw(DATED)} if rest else draw(DATED)
        if rest and draw(st.booleans()):
            resource[head] = [resource[head], {rest: draw(DATED)}]
    if resource_type in _CURRENT and draw(st.booleans()):
        status = draw(st.sampled_from(["active", "on-hold", "resolved", "inactive", "relapse"]))
        path = _CURRENT[resource_type][0]
        if path == "clinicalStatus.coding.code":
            resource["clinicalStatus"] = {"coding": [{"code": status}]}
        else:
            resource[path] = status
    return resource


@given(records(), st.sampled_from([5, 1, 3]))
@settings(max_examples=400)
def test_the_window_admits_what_the_latest_service_date_admitted(
    record: dict[str, Any], years: int
) -> None:
    window = ExchangeWindow.at(NOW, years=years)
    assert window.admits(record) == admitted_by_latest_date(window, record)


def test_prior_authorizations_are_judged_by_their_status_and_periods() -> None:
    window = ExchangeWindow.at(NOW, years=5)
    old = {"lastUpdated": "2020-01-01T00:00:00Z"}
    recent = {"lastUpdated": (NOW - timedelta(days=30)).isoformat()}

    def prior_auth(**fields: Any) -> dict[str, Any]:
        return {"resourceType": "ExplanationOfBenefit", "use": "preauthorization", **fields}

    later = {"start": "2027-01-01", "end": "2027-12-31"}
    item = {"extension": [{"url": PRE_AUTH_PERIOD, "valuePeriod": later}]}
    assert window.admits(prior_auth(status="active", outcome="queued", meta=old))
    assert window.admits(prior_auth(status="active", preAuthRefPeriod=[later], meta=old))
    assert window.admits(prior_auth(status="active", item=[item], meta=old))
    assert window.admits(prior_auth(status="cancelled", meta=recent))
    assert not window.admits(prior_auth(status="cancelled", meta=old))
    assert not window.admits(prior_auth(status="entered-in-error", meta=recent))
    # Its service dates do not count: an old claim date does not leave it out.
    assert window.admits(prior_auth(status="cancelled", created="2010-01-01", meta=recent))


def test_the_window_starts_where_it_did() -> None:
    window = ExchangeWindow.at(NOW, years=5)
    assert window.service_since == date(2022, 3, 15)
    assert window == ExchangeWindow.at(NOW, years=5)


# -- a download's line


class _Unsealed:
    """Keys that open a body as it is (the sealing is the integration tests')."""

    def open(self, stored: str, field: object, row_key: str) -> bytes:
        return stored.encode()


def test_a_stored_row_reads_with_its_meta_as_before() -> None:
    last = datetime(2026, 11, 24, 6, 18, 8, 745767, tzinfo=UTC)
    bodies = [
        {"resourceType": "Patient", "id": "p"},
        {"resourceType": "Patient", "id": "p", "meta": None},
        {"resourceType": "Patient", "meta": {"security": [{"code": "R"}], "versionId": "9"}},
        {"meta": {}, "resourceType": "Patient", "id": "p"},
    ]
    for body in bodies:
        row = SimpleNamespace(
            ref="Patient/p", body=orjson.dumps(body).decode(), version_id=4, last_updated=last
        )
        read = with_meta(row, _Unsealed())  # type: ignore[arg-type]
        expected = dict(body)
        expected["meta"] = {
            **(body.get("meta") or {}),
            "versionId": "4",
            "lastUpdated": "2026-11-24T06:18:08.745767Z",
        }
        assert orjson.dumps(read) == orjson.dumps(expected)  # key order too


def test_one_resource_is_released_as_a_page_of_it_would_be() -> None:
    plain = {"resourceType": "Coverage", "id": "c", "payor": [{"reference": "Organization/x"}]}
    sensitive = {
        "resourceType": "Condition",
        "id": "s",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F10.20"}]},
    }
    for policy in ConsentPolicy:
        for withheld in (frozenset(), frozenset({"Organization/x"})):
            for resource in (plain, sensitive, None):
                lines = [("match", resource)]
                page = list(released_on_page(lines, ReleaseTerms(policy), withheld))
                one = released_now(resource, ReleaseTerms(policy), withheld)
                assert page == ([] if one is None else [("match", one)])
