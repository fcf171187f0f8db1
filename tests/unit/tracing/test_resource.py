"""Each process is an instance of its own in the traces it sends: ``service.instance.id``
is unique to the process (a worker id, a host, in time a pid, are shared), beside the
host, pid and worker id that tell an operator which it is."""

from __future__ import annotations

import os
import uuid

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payerbridge.tracing import record_with, span
from payerbridge.tracing.setup import process_resource


def _child_instance_id() -> str:
    """The instance id a forked child of this process gives itself (as the suite's and
    the demo's servers are started)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, str(process_resource("local")["service.instance.id"]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        found = answer.read().decode()
    os.waitpid(pid, 0)
    return found


def test_each_process_is_its_own_instance() -> None:
    mine = process_resource("local")
    assert uuid.UUID(str(mine["service.instance.id"]))
    assert mine["process.pid"] == os.getpid() and mine["payerbridge.worker_id"] == "local"
    assert process_resource("w2")["service.instance.id"] == mine["service.instance.id"]
    child = _child_instance_id()
    assert uuid.UUID(child) and child != mine["service.instance.id"]


def test_the_spans_resource_names_the_instance_and_an_operators_choice_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    record_with(exporter, batch=False, resource=process_resource("w1"))
    with span("work"):
        pass
    (recorded,) = exporter.get_finished_spans()
    attributes = dict(recorded.resource.attributes)
    assert attributes["service.instance.id"] == process_resource("w1")["service.instance.id"]
    assert attributes["payerbridge.worker_id"] == "w1" and attributes["host.name"]
    # An operator who names the instance (OTEL_RESOURCE_ATTRIBUTES) is not overruled.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=api-7")
    assert "service.instance.id" not in process_resource("w1")
    named = InMemorySpanExporter()
    record_with(named, batch=False, resource=process_resource("w1"))
    with span("more"):
        pass
    (more,) = named.get_finished_spans()
    assert more.resource.attributes["service.instance.id"] == "api-7"
