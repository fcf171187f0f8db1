"""Fetching a davinci-configuration: redirects followed on its own origin only and a few
times, one elsewhere refused naming it; at most its cap read; errors that change
nothing."""

from __future__ import annotations

import httpx
import pytest

from payerbridge.errors import UnprocessableRequest
from payerbridge.partners.answers import Outbound
from payerbridge.partners.discovery import HttpxPartnerDiscovery
from payerbridge.routing.wellknown import MAX_WELLKNOWN_BYTES

AT = "https://old.example/.well-known/davinci-configuration"
BODY = b'{"identifier": {}, "endpoints": {}}'


def discovery(answer: httpx.MockTransport, limit: int = 2 * 1024 * 1024) -> HttpxPartnerDiscovery:
    return HttpxPartnerDiscovery(
        outbound=Outbound(timeout_seconds=5, transport=answer), document_limit=limit
    )


def redirecting(chain: dict[str, str], seen: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if str(request.url) in chain:
            return httpx.Response(302, headers={"Location": chain[str(request.url)]})
        return httpx.Response(200, content=BODY)

    return httpx.MockTransport(answer)


def test_the_document_is_read() -> None:
    seen: list[str] = []
    assert discovery(redirecting({}, seen)).wellknown(AT) == BODY
    assert seen == [AT]


def test_a_redirect_on_the_same_origin_is_followed() -> None:
    seen: list[str] = []
    chain = {AT: "/payer/.well-known/davinci-configuration"}
    assert discovery(redirecting(chain, seen)).wellknown(AT) == BODY
    assert seen == [AT, "https://old.example/payer/.well-known/davinci-configuration"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/.well-known/davinci-configuration",
        "http://old.example/.well-known/davinci-configuration",
        "https://old.example:8443/x",
        "https://u:p@old.example/x",
    ],
)
def test_a_redirect_elsewhere_is_refused_and_not_followed(target: str) -> None:
    seen: list[str] = []
    with pytest.raises(UnprocessableRequest, match="another origin") as caught:
        discovery(redirecting({AT: target}, seen)).wellknown(AT)
    assert caught.value.issues[0].code == "security"
    assert seen == [AT]


def test_a_redirect_loop_stops() -> None:
    seen: list[str] = []
    chain = {AT: "/a", "https://old.example/a": "/b", "https://old.example/b": AT}
    with pytest.raises(UnprocessableRequest, match="more than 3 times"):
        discovery(redirecting(chain, seen)).wellknown(AT)
    assert len(seen) == 4


def test_a_document_over_its_cap_is_not_read_on() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * (MAX_WELLKNOWN_BYTES + 1))

    with pytest.raises(UnprocessableRequest, match="larger than") as caught:
        discovery(httpx.MockTransport(answer)).wellknown(AT)
    assert caught.value.issues[0].code == "too-costly"
    with pytest.raises(UnprocessableRequest, match="larger than 2000"):
        discovery(httpx.MockTransport(answer), limit=2000).wellknown(AT)


@pytest.mark.parametrize("status", [404, 500])
def test_an_error_answer_is_refused_naming_its_status(status: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    with pytest.raises(UnprocessableRequest, match=f"HTTP {status}"):
        discovery(transport).wellknown(AT)


def test_an_unreachable_location_is_refused() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UnprocessableRequest, match="could not be read"):
        discovery(httpx.MockTransport(answer)).wellknown(AT)
    with pytest.raises(UnprocessableRequest, match="absolute http"):
        discovery(httpx.MockTransport(answer)).wellknown("file:///etc/passwd")
