"""The received-record link names one exchange, is signed here and stops at its expiry;
only an event that ended with data carries one (ADR 0052)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import Forbidden, Gone
from payerbridge.webhooks.links import ReceivedLinks, link_key, with_received_link

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
LINKS = ReceivedLinks(link_key(b"s" * 32), timedelta(hours=1), "https://plan.example")
ids = st.text(alphabet="0123456789abcdef-", min_size=1, max_size=36)


def _parts(href: str) -> tuple[str, str, str]:
    url = urlsplit(href)
    query = parse_qs(url.query)
    return url.path.split("/")[2], query["expires"][0], query["signature"][0]


@given(ids, st.integers(min_value=0, max_value=3599))
def test_a_link_works_for_its_exchange_until_it_expires(exchange_id: str, later: int) -> None:
    href, expires = LINKS.link(exchange_id, NOW)
    named, at, signature = _parts(href)
    assert named == exchange_id and expires == NOW + timedelta(hours=1)
    LINKS.check(exchange_id, at, signature, NOW + timedelta(seconds=later))
    with pytest.raises(Gone):
        LINKS.check(exchange_id, at, signature, NOW + timedelta(hours=1, seconds=1))


@given(ids, ids, st.text(max_size=70), st.text(max_size=14))
def test_anything_but_the_signed_link_is_forbidden(
    exchange_id: str, other: str, signature: str, expires: str
) -> None:
    href, _ = LINKS.link(exchange_id, NOW)
    _, at, signed = _parts(href)
    if other != exchange_id:
        with pytest.raises(Forbidden):
            LINKS.check(other, at, signed, NOW)
    if signature != signed:
        with pytest.raises(Forbidden):
            LINKS.check(exchange_id, at, signature, NOW)
    if expires != at:
        with pytest.raises(Forbidden):
            LINKS.check(exchange_id, expires, signed, NOW)
    another = ReceivedLinks(link_key(b"t" * 32), timedelta(hours=1), "https://plan.example")
    with pytest.raises(Forbidden):
        another.check(exchange_id, at, signed, NOW)


@given(st.sampled_from(["submitted", "retrieving", "failed", "completed", "partial", "conflict"]))
def test_only_an_end_with_data_carries_the_link(state: str) -> None:
    body = orjson.dumps({"id": "d1", "exchange": {"id": "x1", "state": state}})
    out = orjson.loads(with_received_link(body, LINKS, NOW))
    linked = "received" in out["exchange"]
    assert linked is (state in {"completed", "partial", "conflict"})
    if not linked:
        assert out == orjson.loads(body)
