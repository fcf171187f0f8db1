"""Incremental exchanges (``since``) on the in-memory ports: the old payer is asked
``_since`` the instant given, what its answer leaves out still stands, and an answer with
nothing changed ends the exchange ``completed`` saying ``nothing-new``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.received.increments import changed_since
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.steps.machine import proceed
from tests.builders import a_coverage, a_patient, an_exchange_request
from tests.fakes import FakeClock
from tests.unit.exchange.test_service import _bundle, _client, _parse, _ports, _submit

SINCE = "2026-06-01T00:00:00Z"
BEFORE, AFTER = "2026-05-01T00:00:00Z", "2026-06-02T08:00:00Z"


def _at(resource: dict[str, Any], stamp: str) -> dict[str, Any]:
    return {**resource, "meta": {"lastUpdated": stamp}}


def test_since_is_a_fhir_instant_with_a_zone_kept_in_utc() -> None:
    parsed = ExchangeCreate.model_validate(
        {**an_exchange_request(), "since": "2026-06-01T02:00:00+02:00"}
    ).to_domain()
    assert parsed.since == datetime(2026, 6, 1, tzinfo=UTC)
    for bad in ("2026-06-01", "2026-06-01T00:00:00", "yesterday", "2026-13-01T00:00:00Z"):
        with pytest.raises(ValidationError, match="since must be a FHIR instant"):
            ExchangeCreate.model_validate({**an_exchange_request(), "since": bad})
    kept = request_from_document({**an_exchange_request(), "since": SINCE})
    assert kept.since == datetime(2026, 6, 1, tzinfo=UTC)


def test_changed_since_counts_what_was_updated_after_leaving_provenance_out() -> None:
    bundle = {
        "entry": [
            {"resource": _at(a_patient(), BEFORE)},
            {"resource": _at(a_coverage(), AFTER)},
            {"resource": a_coverage("c2")},  # no lastUpdated: we cannot tell, so changed
            {"resource": _at({"resourceType": "Provenance", "id": "pv"}, AFTER)},
        ]
    }
    assert changed_since(bundle, datetime(2026, 6, 1, tzinfo=UTC)) == {"Coverage": 2}
    assert changed_since({"entry": bundle["entry"][:1]}, datetime(2026, 6, 1, tzinfo=UTC)) == {}


def test_an_incremental_exchange_asks_since_and_removes_nothing_it_was_not_sent() -> None:
    client = _client()
    client.bundle = _bundle(_at(a_patient(), BEFORE), _at(a_coverage(), BEFORE))
    ports = _ports(client, FakeClock())
    first = _submit(ports, an_exchange_request())
    assert proceed(ports, first, _parse).state is ExchangeState.COMPLETED
    assert client.since_asked is None
    held = set(ports.writer.rows)  # type: ignore[attr-defined]

    # What changed since: a new Coverage only (the Patient comes unchanged, as PDex says).
    client.bundle = _bundle(_at(a_patient(), BEFORE), _at(a_coverage("c2"), AFTER))
    second = _submit(ports, {**an_exchange_request(), "since": SINCE})
    assert proceed(ports, second, _parse).state is ExchangeState.COMPLETED
    assert client.since_asked == datetime(2026, 6, 1, tzinfo=UTC)
    record = ports.exchanges.current(second)
    assert record.since == datetime(2026, 6, 1, tzinfo=UTC) and record.error_code is None
    completeness = record.transitions[-1].detail["completeness"]  # type: ignore[index]
    assert completeness["since"] == SINCE and completeness["changed"] == {"Coverage": 1}
    assert completeness["removed_count"] == 0
    rows = ports.writer.rows  # type: ignore[attr-defined]
    assert held <= set(rows)  # the first Coverage, not sent again, still stands
    kinds = sorted(resource["resourceType"] for resource, _, _ in rows.values())
    assert kinds.count("Coverage") == 2


def test_an_incremental_exchange_that_finds_nothing_new_says_so() -> None:
    client = _client()
    client.bundle = _bundle(_at(a_patient(), BEFORE))
    ports = _ports(client, FakeClock())
    exchange_id = _submit(ports, {**an_exchange_request(), "since": SINCE})

    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    record = ports.exchanges.current(exchange_id)
    assert record.error_code == "nothing-new"
    assert record.error_text == f"the old payer has nothing new since {SINCE}"
    end = record.transitions[-1]
    assert (end.to_state, end.reason_code) == ("completed", "nothing-new")
    assert end.detail and end.detail["completeness"]["changed"] == {}
