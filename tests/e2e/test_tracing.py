"""A caller's trace through both payers (ADR 0033): the new payer records spans and sends
them over OTLP/HTTP to a collector (a receiver in this test); the old payer records none
but continues the trace it is sent. The caller's trace id is on the new payer's request,
workflow steps, units of work and partner calls, on the old payer's log lines for the
calls it answered, and in both payers' audit events."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.builders import a_patient
from tests.e2e import test_bulk_member_match as bulk
from tests.e2e.test_exchange import network, start_payers, switcher_to, wait_terminal  # noqa: F401
from tests.servers import REQUESTER_SCOPES, ServerProcess, new_key


class Collector:
    """An OTLP/HTTP receiver: every span it is sent, as (service, name, trace id, span id,
    parent span id, attributes)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.receive(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append(
                        {
                            "service": service["service.name"],
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "attributes": attributes,
                        }
                    )

    def named(self, name: str) -> list[dict[str, Any]]:
        return [span for span in self.spans if span["name"] == name]

    def wait_for(self, found: Callable[[dict[str, Any]], bool], timeout: float = 15) -> None:
        """Until a span ``found`` is true of has come (a span is sent once it ends)."""
        deadline = time.monotonic() + timeout
        while not any(found(span) for span in self.spans):
            assert time.monotonic() < deadline, sorted({s["name"] for s in self.spans})
            time.sleep(0.05)


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    received = Collector()
    yield received
    received.server.shutdown()
    received.server.server_close()


def test_a_callers_trace_runs_through_both_payers(
    server: Callable[..., ServerProcess],
    network: Path,  # noqa: F811 - the fixture of test_exchange
    collector: Collector,
) -> None:
    recording = {
        "PAYERBRIDGE_TRACING": "otlp",
        "PAYERBRIDGE_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "new-payer",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # the batch sent within 50 ms, not 5 s
        "PAYERBRIDGE_TRACE_STATEMENTS": "true",
    }
    old, new, _info = start_payers(server, network, new_env=recording)
    switcher = switcher_to(network, 0)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    old_since, new_since = len(old.log()), len(new.log())
    with new.client() as client:
        headers = {**new_key(), "traceparent": f"00-{trace_id}-{caller_span}-01"}
        response = client.post("/exchanges", json=switcher["request"], headers=headers)
        assert response.status_code == 202, response.text
        exchange = wait_terminal(client, response.headers["location"])
    assert exchange["state"] == "completed", exchange

    # The new payer's spans: its request continues the caller's span ...
    collector.wait_for(lambda s: s["attributes"].get("payerbridge.exchange_state") == "completed")
    request = collector.named("POST /exchanges")[0]
    assert (request["trace_id"], request["parent_span_id"]) == (trace_id, caller_span)
    assert request["attributes"]["http.route"] == "/exchanges"
    assert request["attributes"]["http.response.status_code"] == 202
    # ... and so do the workflow's steps, their units of work and the partner calls.
    steps = collector.named("exchange.proceed")
    assert steps and {s["trace_id"] for s in steps} == {trace_id}
    assert {s["attributes"]["payerbridge.exchange_id"] for s in steps} == {exchange["id"]}
    match, everything = (
        collector.named("POST $member-match")[0],
        collector.named("GET $everything")[0],
    )
    step_ids = {s["span_id"] for s in steps}
    assert match["parent_span_id"] in step_ids and everything["parent_span_id"] in step_ids
    assert match["attributes"]["http.response.status_code"] == 200
    # Each unit of work is named after the use case that began it.
    units = {s["name"] for s in collector.spans if s["attributes"].get("code.function.name")}
    assert {unit.split(".")[-2] for unit in units} >= {"submission", "retrieval"}, units
    # Statements asked for: a span each, in the trace, inside a span of ours (a request or
    # a unit), named by operation and table.
    recorded = {s["span_id"] for s in collector.spans}
    reads = [s for s in collector.named("SELECT exchanges") if s["trace_id"] == trace_id]
    assert reads and {s["parent_span_id"] for s in reads} <= recorded
    assert {s["service"] for s in collector.spans} == {"new-payer"}  # the old payer records none
    # Nothing of the member in any span: templates, operations, our ids and codes.
    exported = orjson.dumps(collector.spans).decode()
    member = switcher["request"]["member"]
    for secret in (member["family"], member["birth_date"], switcher["old_patient_id"]):
        assert secret not in exported

    # The old payer continued the trace it was sent: its lines for both calls carry it.
    logged = old.logged(old_since, trace_id, "$everything")
    answered = [
        line
        for line in map(orjson.loads, logged.splitlines())
        if line.get("msg") == "request" and line.get("trace_id") == trace_id
    ]
    # (its token and discovery endpoints too: the workflow's step asked them first)
    assert {line["path"] for line in answered} >= {
        "/fhir/Patient/$member-match",
        "/fhir/Patient/{patient_id}/$everything",
    }
    assert all("span_id" not in line for line in answered)  # recording none, it has none
    # The new payer's lines carry the trace and, recording, the span they were written in.
    ours = [orjson.loads(line) for line in new.log()[new_since:].splitlines() if trace_id in line]
    posted = next(line for line in ours if line.get("path") == "/exchanges")
    assert posted["span_id"] == request["span_id"]
    assert any(line.get("logger") == "payerbridge.partners.client" for line in ours)

    # Both payers' audit events of the request carry its trace id, and the chains verify.
    with new.platform() as platform:
        trail = platform.audit.for_entity("Exchange", exchange["id"])
    assert trail and {event["detail"].get("trace_id") for event in trail} == {trace_id}
    with old.platform() as platform:
        theirs = [e for e in platform.audit_chain.events() if trace_id in (e.detail or "")]
    assert "identity.decision" in {event.action for event in theirs}
    for payer in (new, old):
        verified = payer.cli("audit", "verify")
        assert verified.returncode == 0, verified.stderr


def test_a_bulk_job_continues_the_trace_of_its_kick_off(
    server: Callable[..., ServerProcess], tmp_path: Path, collector: Collector
) -> None:
    """The job runs on a worker, later: its span is in the kick-off's trace."""
    data = tmp_path / "members.ndjson"
    people = [a_patient(pid, member_id=member_id) for pid, *_, member_id in bulk.MEMBERS]
    data.write_bytes(b"\n".join(orjson.dumps(person) for person in people))
    recording = {
        "PAYERBRIDGE_ORG_NPI": bulk.OLD_NPI,
        "PAYERBRIDGE_TRACING": "otlp",
        "PAYERBRIDGE_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    old = server("old", env=recording, import_files=[data])
    old = old.authorize("newplan", npi=bulk.NEW_NPI, scope=REQUESTER_SCOPES)
    trace_id = secrets.token_hex(16)
    with old.client() as client:
        status_url = bulk.kick_off(
            client, bulk.four_members(), traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01"
        )
        bulk.wait_for_manifest(client, status_url)
    collector.wait_for(lambda s: s["name"] == "bulk.run" and s["trace_id"] == trace_id)
    [kick] = [s for s in collector.named("POST /fhir/Group/$bulk-member-match")]
    run = next(s for s in collector.named("bulk.run") if s["trace_id"] == trace_id)
    assert kick["trace_id"] == trace_id
    assert run["attributes"]["payerbridge.bulk_job_state"] == "completed"
    assert run["attributes"]["payerbridge.bulk_job_id"] in status_url
