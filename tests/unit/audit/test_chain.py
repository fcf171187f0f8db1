"""The audit chain, its Merkle tree, checkpoints and verification (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from payerbridge.audit.chain import (
    GENESIS,
    MerkleFrontier,
    hash_children,
)
from payerbridge.audit.checkpoints import (
    CheckpointPolicy,
    due_checkpoints,
    sign_checkpoint,
    signature_holds,
)
from payerbridge.audit.model import AuditEvent, Checkpoint, StoredEvent
from payerbridge.audit.verification import verify_chain
from tests.fakes import InMemoryAuditChain, InMemoryAuditLog, InMemoryTransactions

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def _mth(leaves: list[str]) -> str:
    """RFC 6962 section 2.1, recursively, as the reference."""
    if not leaves:
        return GENESIS
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hash_children(_mth(leaves[:k]), _mth(leaves[k:]))


def test_the_frontier_gives_rfc_6962_tree_hashes_at_every_size() -> None:
    frontier, leaves = MerkleFrontier(), []
    for n in range(1, 70):
        leaf = hashlib.sha256(str(n).encode()).hexdigest()
        leaves.append(leaf)
        frontier.add(leaf)
        assert frontier.root() == _mth(leaves)
        assert len(frontier.subtrees) == bin(n).count("1")


def _event(n: int, **changes: object) -> AuditEvent:
    event = AuditEvent(
        at=T0 + timedelta(seconds=n),
        actor="client-a",
        action="exchange.transition",
        entity_type="Exchange",
        entity_id=f"x-{n}",
        outcome="completed",
        request_id=None,
        detail={"to": "completed", "attempt": n},
    )
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


def _stored(events: list[AuditEvent]) -> list[StoredEvent]:
    """The events as the store keeps them: linked in one chain."""
    log = InMemoryAuditLog()
    log.record_many(events)
    return list(InMemoryAuditChain(log).events())


def _checkpoint(stored: list[StoredEvent], seq: int):  # type: ignore[no-untyped-def]
    frontier = MerkleFrontier()
    for event in stored[:seq]:
        frontier.add(event.leaf_hash)
    return sign_checkpoint(seq, stored[seq - 1].chain_hash, frontier.root(), T0, KEY)


def test_an_untouched_chain_holds_against_its_checkpoints() -> None:
    stored = _stored([_event(n) for n in range(1, 11)])
    checkpoints = [_checkpoint(stored, 4), _checkpoint(stored, 10)]
    report = verify_chain(stored, checkpoints, KEY.public_key(), head=(10, stored[-1].chain_hash))
    assert report.holds, report
    assert (report.events, report.checkpoints_checked) == (10, 2)


def test_a_changed_field_names_its_event() -> None:
    stored = _stored([_event(n) for n in range(1, 11)])
    stored[6] = dataclasses.replace(stored[6], outcome="failed")
    report = verify_chain(stored, [], KEY.public_key())
    assert report.first_bad is not None and report.first_bad.seq == 7


def test_a_deleted_event_is_named_missing() -> None:
    stored = _stored([_event(n) for n in range(1, 11)])
    del stored[4]
    report = verify_chain(stored, [], KEY.public_key())
    assert report.first_bad is not None and report.first_bad.seq == 5
    assert "missing" in report.first_bad.reason


def test_events_cut_below_a_checkpoint_are_named() -> None:
    stored = _stored([_event(n) for n in range(1, 11)])
    checkpoint = _checkpoint(stored, 8)
    report = verify_chain(stored[:6], [checkpoint], KEY.public_key())
    assert report.first_bad is not None and report.first_bad.seq == 7


def test_a_rehashed_chain_fails_its_signed_checkpoint() -> None:
    events = [_event(n) for n in range(1, 11)]
    stored = _stored(events)
    checkpoints = [_checkpoint(stored, 4), _checkpoint(stored, 8)]
    events[5] = _event(6, outcome="failed")  # then every hash after it made anew
    forged = _stored(events)
    report = verify_chain(forged, checkpoints, KEY.public_key())
    assert report.first_bad is not None and report.first_bad.seq == 5  # 5..8, after 4 held
    assert "checkpoint 8" in report.first_bad.reason


def test_a_checkpoint_signed_by_another_key_is_not_trusted() -> None:
    stored = _stored([_event(n) for n in range(1, 5)])
    other = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(4, stored[-1].chain_hash, "00" * 32, T0, other)
    assert not signature_holds(forged, KEY.public_key())
    report = verify_chain(stored, [forged], KEY.public_key())
    assert not report.holds and "signature" in report.problems[0]


def test_checkpoints_fall_due_at_each_multiple_and_when_the_last_is_old() -> None:
    policy = CheckpointPolicy(every_events=100, every_seconds=300)
    assert due_checkpoints(last_seq=0, last_at=None, head_seq=0, now=T0, policy=policy) == []
    assert due_checkpoints(last_seq=0, last_at=None, head_seq=7, now=T0, policy=policy) == [7]
    recent, old = T0 - timedelta(seconds=10), T0 - timedelta(seconds=301)
    due = due_checkpoints(last_seq=150, last_at=recent, head_seq=420, now=T0, policy=policy)
    assert due == [200, 300, 400]
    due = due_checkpoints(last_seq=150, last_at=old, head_seq=420, now=T0, policy=policy)
    assert due == [200, 300, 400, 420]


def test_checkpoints_are_signed_when_due_and_verify_against_the_chain() -> None:
    from payerbridge.audit.service import verify_audit, write_checkpoints

    log = InMemoryAuditLog()
    chain = InMemoryAuditChain(log)
    published: list[Checkpoint] = []

    class Sink:
        def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
            published.extend(checkpoints)

    policy = CheckpointPolicy(every_events=4, every_seconds=300)
    transactions = InMemoryTransactions(log, chain)

    def checkpoint(now: datetime) -> list[Checkpoint]:
        with transactions.begin() as unit:
            return write_checkpoints(chain, Sink(), KEY, unit, now=now, policy=policy)

    log.record_many([_event(n) for n in range(1, 10)])
    made = checkpoint(T0)
    assert [c.seq for c in made] == [4, 8, 9]  # the multiples, and the head (none before)
    assert checkpoint(T0) == []  # none due
    log.record_many([_event(n) for n in range(10, 14)])
    assert [c.seq for c in checkpoint(T0 + timedelta(seconds=30))] == [12]
    report = verify_audit(chain, published, KEY.public_key())
    assert report.holds and report.checkpoints_checked == 4


def test_checkpoints_the_witness_holds_and_the_file_lost_are_named() -> None:
    stored = _stored([_event(n) for n in range(1, 13)])
    local = [_checkpoint(stored, 4)]
    witnessed = [_checkpoint(stored, 4), _checkpoint(stored, 8), _checkpoint(stored, 12)]
    head = (12, stored[-1].chain_hash)
    report = verify_chain(stored, local, KEY.public_key(), head=head, witnessed=witnessed)
    assert report.first_bad is None and report.checkpoints_checked == 3
    assert report.problems == [
        "checkpoints 8, 12 are missing from the checkpoint file: the witness holds them"
    ]


def test_events_cut_with_the_file_are_named_by_the_witness() -> None:
    stored = _stored([_event(n) for n in range(1, 13)])
    witnessed = [_checkpoint(stored, 4), _checkpoint(stored, 10)]
    cut = stored[:6]  # and the head row made to agree
    report = verify_chain(
        cut, witnessed[:1], KEY.public_key(), head=(6, cut[-1].chain_hash), witnessed=witnessed
    )
    assert report.first_bad is not None and report.first_bad.seq == 7
    assert report.first_bad.reason == (
        "events 7..10 are missing: the witnessed checkpoint at 10 covers them"
    )


def test_a_checkpoint_held_elsewhere_is_proven_extended() -> None:
    stored = _stored([_event(n) for n in range(1, 21)])
    held = _checkpoint(stored, 7)
    report = verify_chain(
        stored, [], KEY.public_key(), head=(20, stored[-1].chain_hash), against=[held]
    )
    assert report.holds and report.proven == [7]


def test_a_cut_and_regrown_chain_is_not_consistent_with_a_checkpoint_held_elsewhere() -> None:
    events = [_event(n) for n in range(1, 21)]
    held = _checkpoint(_stored(events), 12)
    # Events 10.. cut, and as many others written after them: a chain whose links hold.
    regrown = _stored(events[:9] + [_event(n, outcome="failed") for n in range(10, 21)])
    head = (20, regrown[-1].chain_hash)
    report = verify_chain(regrown, [], KEY.public_key(), head=head, against=[held])
    assert report.first_bad is None and report.proven == []
    assert report.problems == [
        "the witnessed checkpoint's root (at 12) is not consistent with the chain of 20 "
        "events (RFC 9162 consistency proof)"
    ]
    shorter = regrown[:10]
    report = verify_chain(
        shorter, [], KEY.public_key(), head=(10, shorter[-1].chain_hash), against=[held]
    )
    assert report.first_bad is not None
    assert report.first_bad.reason == (
        "events 11..12 are missing: the witnessed checkpoint at 12 covers them"
    )


def test_a_checkpoint_held_elsewhere_must_be_signed_by_the_key() -> None:
    stored = _stored([_event(n) for n in range(1, 5)])
    other = sign_checkpoint(4, stored[-1].chain_hash, "00" * 32, T0, Ed25519PrivateKey.generate())
    report = verify_chain(
        stored, [], KEY.public_key(), head=(4, stored[-1].chain_hash), against=[other]
    )
    assert report.problems == ["the witnessed checkpoint at 4: its signature does not hold"]


def test_a_quiet_trails_newest_event_falls_due_once_the_interval_has_passed() -> None:
    # Low traffic: no multiple of every_events is reached, yet the head is signed once
    # the last checkpoint is every_seconds old (the schedule ticks every 15 s).
    policy = CheckpointPolicy(every_events=1000, every_seconds=60)
    signed_at = T0 - timedelta(seconds=59)
    assert due_checkpoints(last_seq=5, last_at=signed_at, head_seq=6, now=T0, policy=policy) == []
    later = T0 + timedelta(seconds=1)
    assert due_checkpoints(last_seq=5, last_at=signed_at, head_seq=6, now=later, policy=policy) == [
        6
    ]
    # Nothing new: nothing to sign however old the last one is.
    assert (
        due_checkpoints(last_seq=6, last_at=signed_at, head_seq=6, now=later, policy=policy) == []
    )


def test_of_several_checkpoints_held_elsewhere_the_newest_is_proven_and_the_rest_checked() -> None:
    stored = _stored([_event(n) for n in range(1, 21)])
    held = [_checkpoint(stored, 5), _checkpoint(stored, 15), _checkpoint(stored, 10)]
    head = (20, stored[-1].chain_hash)
    report = verify_chain(stored, [], KEY.public_key(), head=head, against=held)
    assert report.proven == [15] and report.checkpoints_checked == 2
    cut = stored[:12]
    report = verify_chain(cut, [], KEY.public_key(), head=(12, cut[-1].chain_hash), against=held)
    assert report.first_bad is not None
    assert report.first_bad.reason == (
        "events 13..15 are missing: the witnessed checkpoint at 15 covers them"
    )


def test_a_checkpoint_no_sink_took_is_not_recorded_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from payerbridge.audit.service import write_checkpoints

    log = InMemoryAuditLog()
    chain = InMemoryAuditChain(log)
    log.record_many([_event(n) for n in range(1, 4)])

    class Unreachable:
        def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
            raise OSError("the witness is not mounted")

    policy = CheckpointPolicy(every_events=100, every_seconds=60)
    transactions = InMemoryTransactions(log, chain)
    with pytest.raises(OSError), caplog.at_level("ERROR"), transactions.begin() as unit:
        write_checkpoints(chain, Unreachable(), KEY, unit, now=T0, policy=policy)
    assert chain.last_checkpoint() is None
    assert "audit checkpoints not published" in caplog.text


class _HeadBehind(InMemoryAuditChain):
    """A chain whose head row says ``heads`` in turn, one per read: what a verifier sees
    when other processes append while it reads, or when rows are written around the head."""

    def __init__(self, log: InMemoryAuditLog, heads: list[int]) -> None:
        super().__init__(log)
        self._heads = heads

    def head(self) -> tuple[int, str]:
        seq = self._heads.pop(0)
        return (seq, next(e.chain_hash for e in self.events(after=seq - 1, up_to=seq)))


def test_events_appended_while_the_chain_is_verified_are_the_next_verifications() -> None:
    from payerbridge.audit.service import verify_audit

    log = InMemoryAuditLog()
    log.record_many([_event(n) for n in range(1, 10)])
    report = verify_audit(_HeadBehind(log, [6, 9]), [], KEY.public_key())
    assert report.holds and report.last_seq == 6


def test_events_beyond_a_head_row_that_never_records_them_are_named() -> None:
    from payerbridge.audit.service import verify_audit

    log = InMemoryAuditLog()
    log.record_many([_event(n) for n in range(1, 10)])
    report = verify_audit(_HeadBehind(log, [6, 6]), [], KEY.public_key())
    assert report.first_bad is None
    assert report.problems == [
        "events 7..9 lie beyond the chain head row: they were written without it"
    ]
