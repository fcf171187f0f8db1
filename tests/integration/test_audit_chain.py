"""The audit chain as PostgreSQL's triggers write it, beyond what the audit CLI's tests
reach: several statements and a rolled-back savepoint in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from payerbridge.audit.chain import hash_leaf, link_events
from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.store.audit import SqlAuditChain


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    if not env:
        pytest.skip("the triggers that chain rows are PostgreSQL's (SQLite's writer links them)")
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env["PAYERBRIDGE_DATABASE_URL"])
    )
    yield platform
    platform.close()


def _insert(connection: Connection, leaves: list[str]) -> None:
    rows = ", ".join(
        f"(now(), 'test', 'probe', 'Probe', 'p{n}', 'success', '{leaf}')"
        for n, leaf in enumerate(leaves)
    )
    connection.exec_driver_sql(
        "INSERT INTO audit_events (at, actor, action, entity_type, entity_id, outcome, "
        f"leaf_hash) VALUES {rows}"
    )


def test_one_transactions_statements_chain_on_and_a_rolled_back_savepoint_leaves_no_gap(
    platform: Platform,
) -> None:
    chain = SqlAuditChain(platform.engine)
    head_seq, head_hash = chain.head()
    leaves = [hash_leaf(bytes([n])) for n in range(7)]
    with platform.engine.begin() as connection:
        # A head carried over from another transaction (or set by hand) is not believed.
        connection.exec_driver_sql(
            "SELECT set_config('payerbridge.audit_head', '1:1:' || repeat('0', 64), false)"
        )
        _insert(connection, leaves[0:3])
        savepoint = connection.begin_nested()
        _insert(connection, leaves[3:5])
        savepoint.rollback()
        _insert(connection, leaves[5:7])
    written = [
        (event.seq, event.leaf_hash, event.prev_hash, event.chain_hash)
        for event in chain.events(after=head_seq)
    ]
    expected = link_events(head_seq, head_hash, leaves[0:3] + leaves[5:7])
    assert written == [(e.seq, e.leaf_hash, e.prev_hash, e.chain_hash) for e in expected]
    assert chain.head() == (expected[-1].seq, expected[-1].chain_hash)
