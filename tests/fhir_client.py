"""What the e2e tests do as a partner's FHIR client: follow a searchset's next links, wait
for an asynchronous job (Bulk Data's status polling), and download its ndjson files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

Resource = dict[str, Any]


def bundles(client: httpx.Client, url: str, params: Any = None) -> Iterator[Resource]:
    """Each page of a searchset, the first asked with ``params``, the rest by next link."""
    answer = client.get(url, params=params)
    while True:
        assert answer.status_code == 200, answer.text
        bundle: Resource = answer.json()
        yield bundle
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return
        answer = client.get(following[0])


def pages(client: httpx.Client, url: str, params: Any = None) -> list[Resource]:
    """Every entry's resource on every page (outcome entries too)."""
    return [
        entry["resource"]
        for bundle in bundles(client, url, params)
        for entry in bundle.get("entry", [])
    ]


def finished(client: httpx.Client, answer: httpx.Response, *, seconds: float = 90) -> Resource:
    """The completed job's manifest, its kick-off ``answer`` polled until it is ready."""
    assert answer.status_code == 202, answer.text
    status_url = answer.headers["Content-Location"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        polled = client.get(status_url)
        if polled.status_code == 200:
            return dict(polled.json())
        assert polled.status_code == 202, polled.text
        time.sleep(0.05)
    raise AssertionError("the job did not complete in time")


def downloaded(client: httpx.Client, manifest: Resource) -> list[Resource]:
    """Every line of every file a manifest lists."""
    found: list[Resource] = []
    for entry in manifest["output"]:
        answer = client.get(entry["url"], headers={"Accept": "application/fhir+ndjson"})
        assert answer.status_code == 200, answer.text
        found += [orjson.loads(row) for row in answer.content.splitlines() if row]
    return found
