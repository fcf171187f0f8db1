"""The data lifecycle on a real database (ADR 0038): the purge drops raw payloads and cuts
requests once their class allows, and nothing else; a legal hold refuses erasure; an
erasure leaves none of the member's PHI in any table (every table is read, not a list of
the ones we thought of) while the other members' stays and the audit chain verifies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from payerbridge.bootstrap import (
    Platform,
    audit_checkpointer,
    build_platform,
    utcnow,
    verify_audit_chain,
)
from payerbridge.compliance.lifecycle import (
    Acting,
    EraseMember,
    PlaceHold,
    Purge,
    ReleaseHold,
    Retention,
    erase_member,
    place_hold,
    purge,
    release_hold,
)
from payerbridge.config import load_settings
from payerbridge.errors import Conflict, InvalidInput, LegalHoldActive, NotFound
from payerbridge.exchange.model import ExchangeState, Move, NewExchange, Stamp
from payerbridge.exchange.requests import request_member_id
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.store.sealed_columns import SEALED_COLUMNS
from payerbridge.store.tables import audit_events, exchange_payloads, metadata
from payerbridge.types import ExchangeId
from tests.builders import a_coverage, a_patient, an_exchange_request

S = ExchangeState
HAPPY = [S.VALIDATED, S.CONSENT_VERIFIED, S.ROUTE_SELECTED, S.MEMBER_MATCHED, S.RETRIEVING]
# Who is erased, by what only they have; and who is not.
ERASED = ("Zephyrine", "Quarrington", "1911-11-11", "MQZ-777", "NQZ-778")
KEPT = ("Noah", "1975-06-07", "M200")


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    store_partner(
        StorePartner(Partner("old", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    members = tmp_path / "members.ndjson"
    records = (
        a_patient(
            "zq",
            given="Zephyrine",
            family="Quarrington",
            birth_date="1911-11-11",
            member_id="MQZ-777",
        ),
        a_coverage("cov-zq", patient="zq", member_id="MQZ-777", subscriber_id="MQZ-777"),
        a_patient("noah", given="Noah", birth_date="1975-06-07", gender="male", member_id="M200"),
        a_coverage("cov-noah", patient="noah", member_id="M200", subscriber_id="S200"),
    )
    members.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    assert platform.import_members(members).accepted
    yield platform
    platform.close()


def an_exchange(
    platform: Platform, name: str, end: list[ExchangeState], *, days_ago: float, **member: Any
) -> ExchangeId:
    """An exchange that ended ``days_ago`` in ``end``'s last state, with a raw payload."""
    at = utcnow() - timedelta(days=days_ago)
    request = an_exchange_request("old", **member)
    request["new_coverage"]["member_id"] = member.get("new_member", "N-" + name)
    request["member"].pop("new_member", None)
    exchange_id = ExchangeId(f"ex-{name}")
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=exchange_id,
                partner_id="old",
                client_id="plan",
                request=request,
                request_hash="h",
                at=at,
            )
        )
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).save_payload(
            exchange_id, '{"raw": "' + name + '"}', "sha", at
        )
    moves = [Move(state) for state in end[:-1]] + [
        Move(end[-1], updates={"imported_patient_id": member.get("imported")})
    ]
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).advance(exchange_id, moves, Stamp(at, "test"))
    return exchange_id


def stored(platform: Platform, exchange_id: str) -> tuple[dict[str, Any], bool]:
    request = platform.exchanges.get(ExchangeId(exchange_id)).request
    with platform.engine.connect() as connection:
        payload = connection.execute(
            select(exchange_payloads.c.exchange_id).where(
                exchange_payloads.c.exchange_id == exchange_id
            )
        ).first()
    return request, payload is not None


WEEK = Retention(raw_payload_grace=timedelta(days=7), request_grace=timedelta(days=7))


def test_the_purge_takes_what_its_class_allows_and_nothing_else(platform: Platform) -> None:
    done = an_exchange(
        platform, "done", [*HAPPY, S.RECEIVED, S.NORMALIZED, S.COMPLETED], days_ago=10
    )
    failed = an_exchange(platform, "failed", [S.VALIDATED, S.FAILED], days_ago=10)
    letter = an_exchange(platform, "letter", [S.VALIDATED, S.DEAD_LETTERED], days_ago=10)
    recent = an_exchange(
        platform, "recent", [*HAPPY, S.RECEIVED, S.NORMALIZED, S.COMPLETED], days_ago=1
    )

    purged = purge(Purge(), replace(platform.units.compliance(), retention=WEEK))

    assert sorted(purged.payloads) == sorted([done, failed])
    assert sorted(purged.requests) == sorted([done, failed])
    for ended in (done, failed):
        request, has_payload = stored(platform, ended)
        assert not has_payload
        assert "Garcia" not in orjson.dumps(request).decode()
        assert request_member_id(request) == f"N-{ended[3:]}"  # what its audit is about
    # A dead letter may be replayed (it needs its request), and the grace is a week.
    for kept in (letter, recent):
        request, has_payload = stored(platform, kept)
        assert has_payload and request["member"]["family"] == "Garcia"
    with platform.engine.connect() as connection:
        event = connection.execute(
            select(audit_events.c.detail).where(audit_events.c.action == "lifecycle.purge")
        ).scalar_one()
    assert sorted(orjson.loads(event)["raw_payloads"]) == sorted([done, failed])
    # Nothing left to do: no work, no event.
    assert not purge(Purge(), replace(platform.units.compliance(), retention=WEEK))


def every_text(platform: Platform) -> str:
    """Every value of every table as text, the sealed columns opened: what the database
    holds, whoever holds the key."""
    parts = []
    sealed = {(c.table.name, c.field.column): c for c in SEALED_COLUMNS}
    with platform.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in row._mapping.items():
                    found = sealed.get((table.name, column))
                    if found is not None and value is not None:
                        key = found.row_key(row)
                        value = platform.sealed_data.open(found.name, value, key).decode()
                    parts.append(str(value))
    return "\n".join(parts)


def test_a_hold_refuses_erasure_and_an_erasure_leaves_none_of_the_members_phi(
    platform: Platform,
) -> None:
    mine = an_exchange(
        platform,
        "mine",
        [*HAPPY, S.RECEIVED, S.NORMALIZED, S.COMPLETED],
        days_ago=1,
        given=["Zephyrine"],
        family="Quarrington",
        birth_date="1911-11-11",
        new_member="NQZ-778",
        imported="zq",
    )
    theirs = an_exchange(platform, "theirs", [S.VALIDATED, S.FAILED], days_ago=1, given=["Noah"])
    before = every_text(platform)
    assert all(marker in before for marker in ERASED + KEPT)

    counsel = Acting("cli:counsel")
    uow = platform.units.compliance()
    hold = place_hold(PlaceHold("zq", counsel, "case 12"), uow)
    with pytest.raises(LegalHoldActive):
        erase_member(EraseMember("zq", "ops", "request"), uow)
    assert every_text(platform).count("Quarrington") == before.count("Quarrington")
    release_hold(ReleaseHold(hold.id, counsel), uow)
    with pytest.raises(Conflict):
        release_hold(ReleaseHold(hold.id, counsel), uow)

    removed = erase_member(EraseMember("zq", "ops", "member's request"), uow)

    assert removed["fhir_resources"] >= 2 and removed["identity_member_records"] == 1
    assert removed["exchanges"] == 1 and removed["exchange_payloads"] == 1
    after = every_text(platform)
    assert [marker for marker in ERASED if marker in after] == []
    assert all(marker in after for marker in KEPT)
    assert stored(platform, theirs)[1]
    assert request_member_id(stored(platform, mine)[0]) is None
    audit_checkpointer(platform)()  # signs the chain's head
    assert verify_audit_chain(platform).holds
    with platform.engine.connect() as connection:
        detail = connection.execute(
            select(audit_events.c.detail).where(audit_events.c.action == "member.erase")
        ).scalar_one()
    assert not any(marker in detail for marker in ERASED)
    assert orjson.loads(detail)["removed"]["fhir_resources"] == removed["fhir_resources"]
    # Erased once: there is nothing of them left to erase, and bad input is refused.
    with pytest.raises(NotFound):
        erase_member(EraseMember("zq", "ops", "again"), uow)
    with pytest.raises(InvalidInput):
        erase_member(EraseMember("noah", "ops", " "), uow)
