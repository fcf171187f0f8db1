"""The trace id on audit events, as the writer stores and hashes it: added to each event
of a unit committed in a trace (a caller's, propagated), kept where an event names its
own, absent outside a trace; every row's leaf hash matches its stored fields."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.verification import event_break
from payerbridge.bootstrap import Platform
from payerbridge.store.audit import SqlAuditChain
from payerbridge.tracing import continued

NOW = datetime(2026, 11, 27, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"


def _event(entity_id: str, detail: dict[str, object]) -> AuditEvent:
    return AuditEvent(NOW, "test", "probe", "Probe", entity_id, "success", "r-1", detail)


def test_a_units_events_carry_its_trace_id_and_hash_as_stored(platform: Platform) -> None:
    chain = SqlAuditChain(platform.engine)
    after, previous = chain.head()
    with continued(f"00-{TRACE}-00f067aa0ba902b7-00"), platform.transactions.begin() as unit:
        unit.record(_event("p1", {}), _event("p2", {"k": 1}), _event("p3", {"trace_id": OTHER}))
    with platform.transactions.begin() as unit:
        unit.record(_event("p4", {"k": 2}))
    written = list(chain.events(after=after))
    details = {e.entity_id: orjson.loads(e.detail) if e.detail else None for e in written}
    assert details == {
        "p1": {"trace_id": TRACE},
        "p2": {"k": 1, "trace_id": TRACE},
        "p3": {"trace_id": OTHER},
        "p4": {"k": 2},
    }
    for expected, event in enumerate(written, start=after + 1):
        assert event_break(event, expected, previous) is None
        previous = event.chain_hash
