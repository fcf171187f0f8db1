"""Proofs on a real database (SQLite, or PostgreSQL with PAYERBRIDGE_TEST_BACKEND): the
subtree roots kept as checkpoints are signed, proofs built from them, and migration
0032 computing the roots of a chain signed before it (and the exchanges' member keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from alembic import command
from sqlalchemy import text

from payerbridge.audit.model import AuditEvent, AuditQuery
from payerbridge.audit.proofs import verify_document
from payerbridge.audit.proving import prove_consistency, prove_event
from payerbridge.bootstrap import Platform, audit_checkpointer
from payerbridge.exchange.received.reconcile import member_key_of
from payerbridge.store.checkpoints import load_public_key
from tests.integration.test_migrations import _alembic

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _record(platform: Platform, first: int, count: int) -> None:
    platform.audit.record_many(
        [
            AuditEvent(
                at=T0 + timedelta(seconds=n),
                actor="plan-a",
                action="member-match",
                entity_type="Patient",
                entity_id=f"m-{n % 7}",
                outcome="match",
                request_id=f"r-{n}",
                detail={"n": n},
            )
            for n in range(first, first + count)
        ]
    )


def _kept(platform: Platform) -> list[tuple[int, int, str]]:
    with platform.engine.connect() as connection:
        rows = connection.execute(text("SELECT level, idx, hash FROM audit_tree_nodes"))
        return sorted((int(r[0]), int(r[1]), str(r[2])) for r in rows)


def test_proofs_are_built_from_the_roots_kept_as_checkpoints_are_signed(
    platform: Platform,
) -> None:
    sign = audit_checkpointer(platform, every_seconds=0)
    _record(platform, 1, 300)
    assert [c.seq for c in sign()] == [300]
    _record(platform, 301, 300)
    assert [c.seq for c in sign()] == [600]
    assert [(level, index) for level, index, _ in _kept(platform)] == [(8, 0), (8, 1)]
    key = load_public_key(platform.settings.data_dir / "audit-signing.key.pub")
    for seq in (1, 256, 257, 300, 600):
        document = prove_event(platform.audit_reader, seq)
        assert verify_document(document, key).holds, seq
    older = prove_event(platform.audit_reader, 42, checkpoint=300)
    assert older["tree_size"] == 300 and verify_document(older, key).holds
    assert verify_document(prove_consistency(platform.audit_reader, 300), key).holds
    # The search an auditor runs, newest first, by entity and by page.
    page = platform.audit_reader.search(AuditQuery(entity=("Patient", "m-3"), count=5))
    assert [e.seq for e in page] == [598, 591, 584, 577, 570]
    after = platform.audit_reader.search(AuditQuery(entity=("Patient", "m-3"), before=570))
    assert after[0].seq == 563 and len(after) == 50
    assert [e.seq for e in platform.audit_reader.by_request("r-5", actor="x", limit=5)] == []


def test_migration_0032_keeps_the_roots_of_a_chain_signed_before_it(platform: Platform) -> None:
    _record(platform, 1, 520)
    audit_checkpointer(platform, every_seconds=0)()
    kept = _kept(platform)
    assert [(level, index) for level, index, _ in kept] == [(8, 0), (8, 1)]
    with platform.engine.begin() as connection:
        command.downgrade(_alembic(connection), "0029")
        connection.execute(
            text(
                "INSERT INTO partners (id, name, npi, base_url, created_at, updated_at) "
                "VALUES ('old-1', 'Old', '1245319599', 'http://old.example', :at, :at)"
            ),
            {"at": T0},
        )
        request = {"new_coverage": {"member_id": "N1"}, "member": {}}
        connection.execute(
            text(
                "INSERT INTO exchanges (id, state, partner_id, client_id, request, request_hash,"
                " created_at, updated_at, attempts, replay_count, last_seq)"
                " VALUES ('x1', 'failed', 'old-1', 'plan-a', :request, 'h', :at, :at, 0, 0, 1)"
            ),
            {"request": orjson.dumps(request).decode(), "at": T0},
        )
    with platform.engine.begin() as connection:
        command.upgrade(_alembic(connection), "0032")
    assert _kept(platform) == kept
    with platform.engine.connect() as connection:
        key = connection.execute(text("SELECT member_key FROM exchanges WHERE id = 'x1'"))
        assert key.scalar_one() == member_key_of("plan-a", "N1")
