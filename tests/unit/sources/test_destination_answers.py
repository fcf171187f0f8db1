"""What a destination's transaction-response says was written: a conditional create it
answered ``200`` found one it held, and is not counted written; an answer we cannot
read entry by entry counts every entry written, as before it was read."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.sources.destination import _found

CREATE = {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x"}
UPDATE = {"method": "PUT", "url": "Condition/c1"}


def _entry(kind: str, request: dict[str, str]) -> dict[str, Any]:
    return {"resource": {"resourceType": kind}, "request": request}


def _answer(statuses: list[str]) -> httpx.Response:
    body = {"resourceType": "Bundle", "type": "transaction-response"}
    body["entry"] = [{"response": {"status": s}} for s in statuses]  # type: ignore[assignment]
    return httpx.Response(200, content=orjson.dumps(body))


entries = st.lists(
    st.tuples(
        st.sampled_from([("Patient", CREATE), ("Condition", UPDATE), ("Patient", UPDATE)]),
        st.sampled_from(["200 OK", "201 Created", "200", "201"]),
    ),
    max_size=8,
)


@given(entries)
def test_only_a_conditional_create_answered_200_is_found(
    sent: list[tuple[tuple[str, dict[str, str]], str]],
) -> None:
    bundle = {"entry": [_entry(kind, request) for (kind, request), _ in sent]}
    found = _found(bundle, _answer([status for _, status in sent]))
    expected: dict[str, int] = {}
    for (kind, request), status in sent:
        if request is CREATE and status.startswith("200"):
            expected[kind] = expected.get(kind, 0) + 1
    assert found == expected


def test_an_answer_not_entry_by_entry_counts_everything_written() -> None:
    bundle = {"entry": [_entry("Patient", CREATE), _entry("Condition", UPDATE)]}
    assert _found(bundle, httpx.Response(200, content=b"not json")) == {}
    assert _found(bundle, httpx.Response(200, content=b"[]")) == {}
    assert _found(bundle, _answer(["200 OK"])) == {}  # one answer for two entries
    assert _found(bundle, httpx.Response(200, content=b'{"entry": 3}')) == {}
