"""The guarded transport against a listener on this machine: the address judged is the
address connected to (a name rebound to loopback after a check is refused at the
connection), the Host header still names the host, plain http goes only to listed
networks, and answers stop at their cap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from payerbridge.errors import UnprocessableRequest
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.transport import AddressRefused, AnswerTooLarge, GuardedTransport, send_bounded
from payerbridge.webhooks.egress import WebhookTargets

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            hosts.append(self.headers["Host"])
            body = b"x" * 10_000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], hosts
    httpd.shutdown()
    httpd.server_close()


class Rebinding:
    """A name that resolves to a public address, then (asked again) to loopback."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def __call__(self, host: str, port: int) -> list[str]:
        return [self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]]


def client(policy: AddressPolicy, resolver: Any) -> httpx.Client:
    return httpx.Client(transport=GuardedTransport(policy, resolver=resolver), timeout=5)


def test_a_listed_network_is_connected_to_with_the_host_name_kept(
    listener: tuple[int, list[str]],
) -> None:
    port, hosts = listener
    with client(LOOPBACK, lambda host, port: ["127.0.0.1"]) as http:
        assert http.get(f"http://partner.example:{port}/x").status_code == 200
    assert hosts[-1] == f"partner.example:{port}"  # Host (and SNI) name the host


def test_a_name_that_resolves_to_loopback_is_not_connected_to(
    listener: tuple[int, list[str]],
) -> None:
    port, hosts = listener
    seen = len(hosts)
    refused = pytest.raises(AddressRefused, match="loopback")
    with client(AddressPolicy(), lambda host, port: ["127.0.0.1"]) as http, refused:
        http.get(f"https://partner.example:{port}/x")
    assert len(hosts) == seen


def test_a_name_rebound_after_the_check_is_refused_at_the_connection(
    listener: tuple[int, list[str]],
) -> None:
    port, hosts = listener
    seen = len(hosts)
    rebinding = Rebinding("93.184.215.14", "127.0.0.1")
    targets = WebhookTargets(AddressPolicy(), resolve=lambda host: rebinding(host, 443))
    url = f"https://hooks.example:{port}/x"
    assert targets.check(url) == url  # public when checked
    with client(AddressPolicy(), rebinding) as http, pytest.raises(AddressRefused):
        http.get(url)  # loopback when connected: refused there
    with pytest.raises(UnprocessableRequest):
        targets.check(url)
    assert len(hosts) == seen


def test_plain_http_goes_only_to_listed_networks() -> None:
    refused = pytest.raises(AddressRefused, match="https is required")
    with client(LOOPBACK, lambda host, port: ["93.184.215.14"]) as http, refused:
        http.get("http://partner.example/x")


def test_an_answer_stops_at_its_cap(listener: tuple[int, list[str]]) -> None:
    port, _ = listener
    with client(LOOPBACK, lambda host, port: ["127.0.0.1"]) as http:
        request = http.build_request("GET", f"http://127.0.0.1:{port}/x")
        with pytest.raises(AnswerTooLarge):
            send_bounded(http, request, limit=5_000)
        read = send_bounded(
            http, http.build_request("GET", f"http://127.0.0.1:{port}/y"), limit=10_000
        )
        assert read.content == b"x" * 10_000
