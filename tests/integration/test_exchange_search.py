"""Exchange search on a real database (SQLite, or PostgreSQL with
PAYERBRIDGE_TEST_BACKEND): every filter, tenancy, keyset pages that neither repeat nor
skip when exchanges arrive meanwhile, and the index each filter leads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.errors import Forbidden
from payerbridge.exchange.model import ExchangeState, Move, NewExchange, Stamp
from payerbridge.exchange.operations.search import ExchangeQuery, search_exchanges
from payerbridge.exchange.operations.search_params import exchange_query
from payerbridge.exchange.received.reconcile import member_key_of
from payerbridge.routing.model import Partner
from payerbridge.store.readings import SqlReadingsSource
from payerbridge.types import ClientId, ExchangeId, PartnerId

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
A, B = ClientId("plan-a"), ClientId("plan-b")


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    with platform.transactions.begin() as unit:
        for partner in ("old-1", "old-2"):
            platform.partners.register(
                unit, Partner(PartnerId(partner), partner, "1245319599", "http://old.example")
            )
    try:
        yield platform
    finally:
        platform.close()


def _submit(
    platform: Platform,
    n: int,
    *,
    client: ClientId = A,
    partner: str = "old-1",
    member: str = "M1",
    at: datetime = T0,
) -> ExchangeId:
    exchange_id = ExchangeId(f"x{n:04d}")
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=exchange_id,
                partner_id=PartnerId(partner),
                client_id=client,
                request={"n": n},
                request_hash="0" * 64,
                at=at,
                request_id=f"req-{n}",
                member_key=member_key_of(client, member),
            )
        )
    return exchange_id


def _fail(platform: Platform, exchange_id: ExchangeId, code: str, at: datetime) -> None:
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).advance(
            exchange_id,
            [Move(ExchangeState.FAILED, code, updates={"error_code": code})],
            Stamp(at, "test"),
        )


def _ids(platform: Platform, viewer: ClientId | None, **params: str) -> list[str]:
    page = search_exchanges(exchange_query(params.items()), platform.exchange_search, viewer=viewer)
    assert page.total == len(page.items) and page.next is None
    return [record.id for record in page.items]


def test_each_filter_finds_what_it_names_and_a_client_only_its_own(platform: Platform) -> None:
    day = timedelta(days=1)
    a1 = _submit(platform, 1, member="M1", at=T0)
    a2 = _submit(platform, 2, member="M2", partner="old-2", at=T0 + day)
    b3 = _submit(platform, 3, client=B, member="M1", at=T0 + 2 * day)
    _fail(platform, a2, "no-route", T0 + 3 * day)
    ops = None
    assert _ids(platform, ops) == [b3, a2, a1]  # newest first
    assert _ids(platform, A) == [a2, a1] and _ids(platform, B) == [b3]
    # A member is our member id, hashed with each client: one client's member M1 is not
    # another's; an operator naming no client finds both.
    assert _ids(platform, A, member="M1") == [a1]
    assert _ids(platform, ops, member="M1") == [b3, a1]
    assert _ids(platform, ops, member="M1", client="plan-b") == [b3]
    assert _ids(platform, ops, member_key=member_key_of(A, "M1")) == [a1]
    assert _ids(platform, A, member="nobody") == []
    assert _ids(platform, ops, partner="old-2") == [a2]
    assert _ids(platform, ops, request_id="req-3") == [b3]
    assert _ids(platform, A, request_id="req-3") == []  # B's request, not A's to find
    assert _ids(platform, ops, state="failed") == [a2]
    assert _ids(platform, ops, state="submitted,failed") == [b3, a2, a1]
    assert _ids(platform, ops, reason="no-route") == [a2]
    assert _ids(platform, ops, reason="cancelled,revoked") == []
    assert _ids(platform, ops, created="2026-03-02") == [a2]
    assert _ids(platform, ops, created="ge2026-03-02") == [b3, a2]
    assert _ids(platform, ops, created="lt2026-03-02T09:00:00Z") == [a1]
    assert _ids(platform, ops, updated="ge2026-03-04") == [a2]  # failed that day
    both = [("created", "gt2026-03-01"), ("created", "le2026-03-03T09:00:00+00:00")]
    page = search_exchanges(exchange_query(both), platform.exchange_search, viewer=None)
    assert [r.id for r in page.items] == [b3, a2]
    with pytest.raises(Forbidden):
        search_exchanges(ExchangeQuery(client_id=B), platform.exchange_search, viewer=A)


def test_pages_follow_a_stable_cursor_while_exchanges_arrive(platform: Platform) -> None:
    for n in range(7):  # two pairs submitted in the same microsecond: ties broken by id
        _submit(platform, n, at=T0 + timedelta(minutes=n // 2))
    seen: list[str] = []
    query = ExchangeQuery(count=3)
    while True:
        page = search_exchanges(query, platform.exchange_search, viewer=A)
        assert page.total == 7 + (1 if seen else 0)
        seen.extend(record.id for record in page.items)
        if not seen[3:]:
            _submit(platform, 99, at=T0 + timedelta(hours=1))  # newer: before the cursor
        if page.next is None:
            break
        query = ExchangeQuery(count=3, after=page.next)
    assert seen == [f"x{n:04d}" for n in (6, 5, 4, 3, 2, 1, 0)]


def test_searches_are_index_ranges_not_scans(platform: Platform) -> None:
    if platform.engine.dialect.name != "sqlite":
        pytest.skip("the plan is read from SQLite's EXPLAIN QUERY PLAN")
    filters = {
        "client_id": "ix_exchanges_client_created",
        "partner_id": "ix_exchanges_partner_created",
        "member_key": "ix_exchanges_member_created",
        "error_code": "ix_exchanges_reason_created",
    }
    with platform.reader.connect() as connection:
        for column, index in filters.items():
            plan = connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT * FROM exchanges WHERE "
                    f"{column} = 'x' AND (created_at < :at OR (created_at = :at AND id < 'x'))"
                    " ORDER BY created_at DESC, id DESC LIMIT 51"
                ),
                {"at": T0},
            ).all()
            details = " ".join(str(row[-1]) for row in plan)
            assert index in details and "TEMP B-TREE" not in details, details


def test_a_scrape_counts_by_state_and_reason_from_the_partial_reason_index(
    platform: Platform,
) -> None:
    # The reason's index holds only exchanges that carry one: the counts of those without
    # are each state's total less its reasoned ones, read in the same statement.
    ids = [_submit(platform, n, at=T0 + timedelta(minutes=n)) for n in range(6)]
    _fail(platform, ids[0], "no-route", T0)
    _fail(platform, ids[1], "no-route", T0)
    _fail(platform, ids[2], "no-match", T0)
    with platform.transactions.begin() as unit:  # failed with no reason kept
        platform.exchanges.within(unit).advance(
            ids[3], [Move(ExchangeState.FAILED, None)], Stamp(T0, "test")
        )
    readings = SqlReadingsSource(platform.reader, risk_windows={}).read(now=T0, review_ages=())
    counts = {(c.state, c.reason_code): c.count for c in readings.exchanges}
    assert counts == {
        ("failed", "no-route"): 2,
        ("failed", "no-match"): 1,
        ("failed", None): 1,
        ("submitted", None): 2,
    }
    if platform.engine.dialect.name == "sqlite":
        with platform.reader.connect() as connection:
            plan = connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT state, error_code, count(*) FROM exchanges"
                    " WHERE error_code IS NOT NULL GROUP BY state, error_code"
                )
            ).all()
        assert "COVERING INDEX ix_exchanges_state_reason" in " ".join(str(r[-1]) for r in plan)
