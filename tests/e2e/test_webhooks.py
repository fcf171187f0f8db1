"""Webhooks end to end: a client subscribes, its exchange runs between two real servers,
and a receiver in this process is told of every state change, signed, with the failed
posts retried under the same delivery id."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from payerbridge.security.model import EXCHANGES_SCOPE
from payerbridge.webhooks.model import verify
from tests.e2e.test_exchange import HAPPY_PATH, network, start_payers, wait_terminal  # noqa: F401
from tests.servers import ServerProcess, new_key


@pytest.fixture
def payers(
    server: Callable[..., ServerProcess],
    network: Any,  # noqa: F811
) -> tuple[ServerProcess, ServerProcess, dict[str, Any]]:
    """An old and a new payer of the test's own: it subscribes the new payer's plan
    system and counts every delivery."""
    return start_payers(server, network)


@dataclass
class Receiver:
    """Answers 503 to its first ``failures`` posts, then 204; keeps what it was sent."""

    failures: int
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = 503 if len(self.received) < self.failures else 204
            self.received.append((headers, body, status))
            return status

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b, status in self.received if status == 204]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(failures=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/exchanges"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_subscriber_is_told_of_every_state_change_signed_and_retried(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    receiver: Receiver,
    network: Any,  # noqa: F811
) -> None:
    _old, new, _info = payers
    switchers = orjson.loads((network / "switchers.json").read_bytes())
    with new.anonymous() as anonymous:
        refused = anonymous.post("/webhooks", json={"url": receiver.url})
        assert refused.status_code == 401
        assert refused.json()["resourceType"] == "OperationOutcome"
    new.authorize("portal", scope=EXCHANGES_SCOPE)  # the plan's own system
    with new.client() as client:
        plain = client.post("/webhooks", json={"url": "http://hooks.example.com/x"})
        assert plain.status_code == 422, plain.text
        assert plain.json()["issue"][0]["expression"] == ["url"]

        created = client.post("/webhooks", json={"url": receiver.url})
        assert created.status_code == 201, created.text
        subscription = created.json()
        secret = subscription["secret"]
        listed = client.get("/webhooks").json()
        assert [s["id"] for s in listed["items"]] == [subscription["id"]]
        assert "secret" not in listed["items"][0]

        trace_id = secrets.token_hex(16)
        traced = {**new_key(), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        response = client.post("/exchanges", json=switchers[0]["request"], headers=traced)
        assert response.status_code == 202, response.text
        exchange = wait_terminal(client, response.headers["location"])
        assert exchange["state"] == "completed", exchange

        wait_for(lambda: len(receiver.delivered()) == len(HAPPY_PATH))
        events = []
        for headers, body in receiver.delivered():
            # Each post continues the trace of the request whose exchange it tells of.
            assert headers["traceparent"].split("-")[1] == trace_id
            assert verify(secret, headers["payerbridge-signature"], body, now=int(time.time()))
            assert not verify(
                "another-secret", headers["payerbridge-signature"], body, now=int(time.time())
            )
            event = orjson.loads(body)
            assert event["id"] == headers["payerbridge-delivery"]
            assert event["type"] == headers["payerbridge-event"] == "exchange.state-changed"
            assert event["exchange"]["id"] == exchange["id"]
            events.append(event["exchange"])
        # One delivery per transition, none twice; the order of arrival is not promised.
        assert sorted(e["seq"] for e in events) == list(range(1, len(HAPPY_PATH) + 1))
        assert [e["state"] for e in sorted(events, key=lambda e: e["seq"])] == HAPPY_PATH
        # The two refused posts were tried again under their own delivery ids.
        refused_ids = {h["payerbridge-delivery"] for h, _, s in receiver.received if s == 503}
        delivered_ids = {h["payerbridge-delivery"] for h, _ in receiver.delivered()}
        assert refused_ids <= delivered_ids
        # Nothing about the member travels in a webhook.
        assert all(
            b"family" not in body and b"birth" not in body for _, body, _ in receiver.received
        )

        _the_completed_event_links_to_the_received_record(new, events, _info)

        deliveries = client.get(f"/webhooks/{subscription['id']}/deliveries").json()["items"]
        assert {d["status"] for d in deliveries} == {"delivered"}
        assert sum(d["attempts"] for d in deliveries) == len(receiver.received)

        # Another client sees neither the subscription nor its deliveries.
        other = new.register_client("other", npi="1245319599", scope=EXCHANGES_SCOPE)
        headers = {"Authorization": f"Bearer {other}"}
        assert client.get(f"/webhooks/{subscription['id']}", headers=headers).status_code == 404

        # Unsubscribed: the next exchange is not announced.
        assert client.delete(f"/webhooks/{subscription['id']}").json()["disabled_at"]
        before = len(receiver.received)
        response = client.post("/exchanges", json=switchers[1]["request"], headers=new_key())
        assert wait_terminal(client, response.headers["location"])["state"] == "completed"
        time.sleep(1.5)
        assert len(receiver.received) == before


def _the_completed_event_links_to_the_received_record(
    new: ServerProcess, events: list[dict[str, Any]], info: dict[str, Any]
) -> None:
    """Only the end with data carries the link; the plan's own client follows it to the
    member's record, another organization's, or a link changed by a hair, does not."""
    linked = [e for e in events if "received" in e]
    assert [e["state"] for e in linked] == ["completed"]
    href = linked[0]["received"]["href"]
    assert href.startswith(f"{new.base_url}/exchanges/{linked[0]['id']}/received?expires=")
    own = new.register_client("plan-reader", npi=info["platform"]["npi"], scope="system/*.rs")
    other = new.register_client("payer-reader", npi="1245319599", scope="system/*.rs")
    with new.client_with(own) as client:
        followed = client.get(href, follow_redirects=True)
        assert followed.status_code == 200, followed.text
        kinds = {e["resource"]["resourceType"] for e in followed.json()["entry"]}
        assert "Patient" in kinds
        forged = href[:-1] + ("0" if href[-1] != "0" else "1")
        assert client.get(forged).status_code == 403
    with new.client_with(other) as client:
        assert client.get(href).status_code == 403
