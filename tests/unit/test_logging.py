"""``log_on_request``: on the request's one line while a request is served, else a line of
its own; member data dropped either way."""

from __future__ import annotations

import logging

import orjson
import pytest

from payerbridge.logging import JsonFormatter, log_on_request, request_line

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
