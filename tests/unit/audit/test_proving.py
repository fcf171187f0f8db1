"""Proof documents from the proving use cases, checked with the public key alone (pure,
on the in-memory chain): an event's inclusion, a request's events as the partner that
made it sees them, two checkpoints' consistency; and every alteration refused."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from payerbridge.audit.checkpoints import CheckpointPolicy
from payerbridge.audit.model import AuditEvent, Checkpoint
from payerbridge.audit.proofs import verify_document
from payerbridge.audit.proving import prove_consistency, prove_event, prove_request
from payerbridge.audit.service import write_checkpoints
from payerbridge.errors import Conflict, InvalidInput, NotFound
from tests.fakes import InMemoryAuditChain, InMemoryAuditLog, InMemoryTransactions

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()


class _Sink:
    def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
        pass


def _event(n: int, *, actor: str = "plan-b", request_id: str | None = None) -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(seconds=n),
        actor=actor,
        action="member-match",
        entity_type="Patient",
        entity_id=f"m-{n}",
        outcome="match",
        request_id=request_id or f"r-{n}",
        detail={"decision": f"d-{n}"},
    )


def _chain(count: int, every: int = 256) -> tuple[InMemoryAuditLog, InMemoryAuditChain]:
    log = InMemoryAuditLog()
    chain = InMemoryAuditChain(log)
    log.record_many([_event(n) for n in range(1, count + 1)])
    _sign(log, chain, every)
    return log, chain


def _sign(log: InMemoryAuditLog, chain: InMemoryAuditChain, every: int = 256) -> None:
    policy = CheckpointPolicy(every_events=every, every_seconds=0)
    with InMemoryTransactions(log, chain).begin() as unit:
        write_checkpoints(chain, _Sink(), KEY, unit, now=T0, policy=policy)


def test_an_events_proof_holds_with_the_public_key_alone_and_fails_altered() -> None:
    _, chain = _chain(600)  # checkpoints at 256, 512 and 600: kept roots at height 8
    assert [n for s in chain.checkpoints for n in s.nodes if n[0] == 8][:1]
    document = prove_event(chain, 300)
    assert document["tree_size"] == 600 and document["leaf_index"] == 299
    check = verify_document(document, PUBLIC)
    assert check.holds, check.reason
    against_older = prove_event(chain, 100, checkpoint=256)
    assert verify_document(against_older, PUBLIC).holds

    def altered(change: Any) -> str:
        changed = copy.deepcopy(document)
        change(changed)
        result = verify_document(changed, PUBLIC)
        assert not result.holds
        return result.reason

    assert "do not give its leaf" in altered(lambda d: d["event"].update(outcome="no-match"))
    assert "do not give its leaf" in altered(lambda d: d["event"].update(detail='{"x":1}'))
    assert "not leaf" in altered(lambda d: d.update(tree_size=599))
    assert "not leaf" in altered(lambda d: d.update(leaf_index=298))
    assert "not in the tree" in altered(lambda d: d["audit_path"].reverse())
    assert "not signed" in altered(lambda d: d["checkpoint"].update(seq=601))
    assert "not signed" in altered(lambda d: d["checkpoint"].update(merkle_root="0" * 64))
    other_key = Ed25519PrivateKey.generate().public_key()
    assert "not signed by this key" in verify_document(document, other_key).reason
    with pytest.raises(ValueError, match="not a proof document"):
        verify_document({"kind": "something else"}, PUBLIC)
    with pytest.raises(ValueError, match="not a proof document"):
        verify_document({**document, "checkpoint": {}}, PUBLIC)


def test_events_beyond_the_checkpoint_or_missing_are_named() -> None:
    log, chain = _chain(10, every=4)
    log.record(_event(11))
    with pytest.raises(Conflict, match="after the checkpoint at 10"):
        prove_event(chain, 11)
    with pytest.raises(NotFound, match="no audit event 99"):
        prove_event(chain, 99)
    with pytest.raises(NotFound, match="no checkpoint at 5"):
        prove_event(chain, 3, checkpoint=5)
    with pytest.raises(NotFound, match="no checkpoint is signed yet"):
        prove_event(InMemoryAuditChain(log), 3)


def test_a_partner_gets_proofs_of_its_own_requests_events_only() -> None:
    log, chain = _chain(20, every=8)
    log.record_many(
        [
            _event(21, actor="plan-a", request_id="req-a"),
            _event(22, actor="plan-a", request_id="req-a"),
            _event(23, actor="plan-b", request_id="req-a"),  # another's, the same request id
        ]
    )
    _sign(log, chain, 8)
    log.record(_event(24, actor="plan-a", request_id="req-a"))  # not under a checkpoint yet

    mine = prove_request(chain, "req-a", viewer="plan-a", since=8)
    assert [p["event"]["seq"] for p in mine.proofs] == [21, 22] and mine.pending == [24]
    assert all(verify_document(p, PUBLIC).holds for p in mine.proofs)
    assert mine.consistency is not None and verify_document(mine.consistency, PUBLIC).holds
    shown = mine.to_json()
    assert shown["checkpoint"]["seq"] == 23 and shown["request_id"] == "req-a"
    with pytest.raises(NotFound, match="no audit event of yours"):
        prove_request(chain, "r-3", viewer="plan-a")  # plan-b's request
    everyone = prove_request(chain, "req-a", viewer=None)  # an auditor
    assert [p["event"]["seq"] for p in everyone.proofs] == [21, 22, 23]
    with pytest.raises(NotFound, match="no checkpoint at 9"):
        prove_request(chain, "req-a", viewer="plan-a", since=9)


def test_two_checkpoints_are_proven_consistent() -> None:
    _, chain = _chain(600)
    document = prove_consistency(chain, 256, second=600)
    assert verify_document(document, PUBLIC).holds
    forged = copy.deepcopy(document)
    forged["proof"][0] = "0" * 64
    assert not verify_document(forged, PUBLIC).holds
    with pytest.raises(InvalidInput, match="newer"):
        prove_consistency(chain, 600, second=256)
