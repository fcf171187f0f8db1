"""``log_on_request``: on the request's one line while a request is served, else a line of
its own; member data dropped either way."""

from __future__ import annotations

import logging
import time
import uuid

import orjson
import pytest

from payerbridge.logging import JsonFormatter, log_on_request, new_request_id, request_line

logger = logging.getLogger("payerbridge.test")


def test_inside_a_request_the_fields_go_on_its_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fields: dict[str, object] = {}
    with request_line(fields):
        log_on_request(logger, "decided", decision_id="d1", outcome="match")
        log_on_request(logger, "answered", answer_shape="1.2.0")
    assert caplog.records == []
    assert fields == {
        "events": ["decided", "answered"],
        "decision_id": "d1",
        "outcome": "match",
        "answer_shape": "1.2.0",
    }


def test_outside_a_request_it_is_a_line_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_on_request(logger, "decided", decision_id="d1", birth_date="1990-01-01")
    [record] = caplog.records
    line = orjson.loads(JsonFormatter().format(record))
    assert line["msg"] == "decided" and line["decision_id"] == "d1"
    assert "birth_date" not in line


def test_our_request_ids_are_version_7_uuids_that_grow_with_time() -> None:
    """They land at the end of the indexes that hold them (``new_request_id``)."""
    made = []
    for _ in range(3):
        made.append(new_request_id())
        time.sleep(0.002)  # a millisecond apart at least
    parsed = [uuid.UUID(made_id) for made_id in made]
    assert [str(u) for u in parsed] == made  # in the canonical form, lower case
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert made == sorted(made) and len(set(made)) == 3
    # The first 48 bits are the millisecond it was made.
    assert abs((parsed[0].int >> 80) - int(time.time() * 1000)) < 5_000
    assert len({new_request_id() for _ in range(10_000)}) == 10_000
