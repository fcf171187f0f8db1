"""The quirky FHIR server as a real process (``payerbridge sandbox fhir-source``), read
through FhirServerSource over HTTP: the roster by $export, then a member's records,
with a SMART Backend Services token."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import orjson

from payerbridge.backends.ports import RecordsQuery
from payerbridge.net.addresses import LOOPBACK_NETWORKS, AddressPolicy
from payerbridge.sources import FhirServerSettings, FhirServerSource
from tests.processes import ForkedProcess
from tests.servers import free_port, new_signing_key, probe, public_jwk

TYPES = frozenset({"Patient", "Coverage", "Condition", "Observation", "Encounter"})


def test_a_member_is_read_from_a_running_fhir_server(tmp_path: Path) -> None:
    key = new_signing_key()
    jwks = tmp_path / "client-jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [public_jwk(key)]}))
    port = free_port()
    log = tmp_path / "fhir-source.log"
    process = ForkedProcess(
        [
            "sandbox",
            "fhir-source",
            "--port",
            str(port),
            "--members",
            "6",
            "--as-of",
            "2025-01-01",
            "--client-id",
            "platform",
            "--jwks-file",
            str(jwks),
            "--export-retry-after",
            "0",
        ],
        env={**os.environ, "COLUMNS": "1000"},
        stdout=log,
    )
    try:
        _wait_healthy(port, process, log)
        source = FhirServerSource(
            FhirServerSettings(
                id="clinical",
                base_url=f"http://127.0.0.1:{port}/fhir",
                types=TYPES,
                client_id="platform",
                private_key={**key.as_dict(private=True), "kid": key.kid},
                page_size=10,
            ),
            policy=AddressPolicy.allowing(LOOPBACK_NETWORKS),
        )
        try:
            roster = list(source.roster())
            assert len({p["id"] for p in roster}) >= 6
            member = roster[-1]["id"]
            answer = source.records(RecordsQuery(member), budget_seconds=10)
            assert answer.complete, answer.gaps
            assert {"Patient", "Coverage"} <= {r["resourceType"] for r in answer.records}
            assert source.tokens is not None and source.tokens.requested == 1
        finally:
            source.close()
    finally:
        process.terminate()
        process.wait(15)


def _wait_healthy(port: int, process: ForkedProcess, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the FHIR source exited:\n{log.read_text()}")
        try:
            if probe(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the FHIR source did not start:\n{log.read_text()}")
