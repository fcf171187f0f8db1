"""Partner answers are read up to a cap: an answer over it fails the call (PartnerRejected,
not retried) without being read whole, whether it declares its length or streams
without one; a member's record over its cap across pages fails too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from payerbridge.errors import PartnerRejected
from payerbridge.exchange.ports import RecordRead
from payerbridge.partners.answers import Outbound, ResponseCaps
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId
from tests.servers import new_signing_key

BASE = "https://old.example/fhir"
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", BASE)
CAPS = ResponseCaps(answer=64 * 1024, record=150 * 1024, file=64 * 1024, document=8 * 1024)


def client(handler: httpx.MockTransport) -> HttpxPartnerClient:
    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=handler),
        user_agent="test",
        key=new_signing_key(),
        caps=CAPS,
    )


class Endless(httpx.SyncByteStream):
    """A body without Content-Length that would never end; counts what was read of it."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        prefix = b'{"resourceType":"Bundle","entry":['
        self.sent += len(prefix)
        yield prefix
        while True:
            chunk = b'{"resource":{"resourceType":"Observation"}},' * 256
            self.sent += len(chunk)
            yield chunk


def test_a_streamed_answer_over_the_cap_is_cut_off_and_refused() -> None:
    body = Endless()
    partner = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
    with pytest.raises(PartnerRejected, match="larger than 65536 bytes") as refused:
        client(partner).everything(PARTNER, RecordRead("Patient/1", idempotency_key="k"))
    assert "PAYERBRIDGE_PARTNER_MAX_ANSWER_BYTES" in refused.value.text
    assert body.sent < 2 * CAPS.answer  # stopped at the cap, not read to the end


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    body = Endless()
    partner = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"Content-Length": "104857600"}, stream=body)
    )
    with pytest.raises(PartnerRejected, match="larger than"):
        client(partner).member_match(PARTNER, {"resourceType": "Parameters"}, idempotency_key="k")
    assert body.sent == 0


def test_a_bulk_file_over_its_cap_is_refused() -> None:
    partner = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 70_000))
    with pytest.raises(PartnerRejected, match="PARTNER_MAX_FILE_BYTES"):
        client(partner).download(PARTNER, f"{BASE}/files/1.ndjson", idempotency_key="k")


def test_a_record_over_its_cap_across_pages_is_refused() -> None:
    entry = {"resource": {"resourceType": "Observation", "note": [{"text": "x" * 1000}]}}

    def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        bundle = {
            "resourceType": "Bundle",
            "entry": [entry] * 50,  # about 55 kB a page: under the answer cap
            "link": [{"relation": "next", "url": f"{BASE}/Patient/1/$everything?page={page + 1}"}],
        }
        return httpx.Response(200, content=orjson.dumps(bundle))

    with pytest.raises(PartnerRejected, match="PARTNER_MAX_RECORD_BYTES"):
        client(httpx.MockTransport(pages)).everything(
            PARTNER, RecordRead("Patient/1", idempotency_key="k")
        )


def test_answers_under_the_caps_are_read_whole() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}
    partner = httpx.MockTransport(lambda request: httpx.Response(200, json=bundle))
    retrieved = client(partner).everything(PARTNER, RecordRead("Patient/1", idempotency_key="k"))
    assert orjson.loads(retrieved.content)["entry"] == bundle["entry"]
