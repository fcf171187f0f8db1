"""PHI outside the FHIR store is sealed at rest (ADR 0039), on SQLite and on PostgreSQL
(PAYERBRIDGE_TEST_BACKEND): read with the database's own driver, the identity tables and
the exchanges show no name, birth date or address; matching works on what is sealed;
``rotate-data`` moves everything under a new key and retires the old; values stored
before sealing began are sealed at the next start; a lost key stops a command with its
reason, exit 2, and no traceback."""

from __future__ import annotations

import dataclasses
import hmac
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from payerbridge.bootstrap import Platform, build_platform, new_kek_file, read_kek
from payerbridge.cli.main import main
from payerbridge.config import Settings, load_settings
from payerbridge.consent.model import Requester
from payerbridge.errors import DataKeyUnavailable, PayerBridgeError
from payerbridge.exchange.model import NewExchange
from payerbridge.fhir.member_match import parse_member_match_request
from payerbridge.identity.indexing import reindex_all
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, Matcher
from payerbridge.identity.matching.model import DecisionId, MatchOutcome
from payerbridge.identity.ports import DecisionToRecord
from payerbridge.identity.review_queue import review_opening
from payerbridge.identity.service import (
    AttemptLimit,
    MatchedMember,
    MemberMatchCommand,
    MemberMatchRules,
    decide_request,
    decision_audit_event,
    match_member,
    model_for,
    record_batch_decisions,
    request_record,
)
from payerbridge.routing.model import Partner
from payerbridge.security.data_rotation import (
    RewrapDataKeys,
    RotateDataKeys,
    rewrap_data_keys,
    rotate_data_keys,
)
from payerbridge.store.at_rest import token_index_key
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.key_files import identity_secret
from payerbridge.store.sealing import kek_fingerprint, key_id_of
from payerbridge.store.tables import (
    audit_events,
    data_keys,
    exchanges,
    fhir_resources,
    fhir_tokens,
    identity_links,
    identity_member_records,
    identity_reviews,
    sealed_columns,
)
from payerbridge.types import ClientId, ExchangeId, PartnerId
from tests.builders import a_coverage, a_patient
from tests.conftest import BACKEND

AT = datetime(2027, 1, 1, tzinfo=UTC)
ADDRESS = {"line": ["12 Quince Lane"], "city": "Springfield", "postalCode": "62704"}
# What must not be readable anywhere in the sealed tables.
PLAINTEXT = ("Garcia", "GARCIA", "Ana", "ANA", "1980-02-03", "19800203", "Quince", "QUINCE")
NEW_PAYER_ID = "NEWPAYER-4711"  # the requester's member id, linked to ours


def _settings(data_dir: Path, env: dict[str, str]) -> Settings:
    return load_settings(data_dir=data_dir, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))


@pytest.fixture
def env(database_env: Callable[[], dict[str, str]]) -> dict[str, str]:
    return database_env()


@pytest.fixture
def platform(tmp_path: Path, env: dict[str, str]) -> Iterator[Platform]:
    platform = build_platform(_settings(tmp_path, env))
    members = tmp_path / "members.ndjson"
    ana = {**a_patient("ana", given="Ana", member_id="M100"), "address": [ADDRESS]}
    members.write_bytes(
        b"\n".join(
            orjson.dumps(r)
            for r in (
                ana,
                a_coverage("cov-ana", patient="ana", member_id="M100", subscriber_id="S100"),
                a_patient("noah", given="Noah", birth_date="1975-06-07", member_id="M200"),
                a_coverage("cov-noah", patient="noah", member_id="M200", subscriber_id="S200"),
            )
        )
    )
    assert platform.import_members(members).accepted
    try:
        yield platform
    finally:
        platform.close()


def _request(given: str = "Ana", birth_date: str = "1980-02-03", member_id: str = "M100") -> Any:
    patient = {
        "resourceType": "Patient",
        "id": "1",
        "name": [{"family": "Garcia", "given": [given]}],
        "birthDate": birth_date,
        "address": [ADDRESS],
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "c",
        "status": "active",
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}
                    ]
                },
                "value": member_id,
            }
        ],
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"display": "Old"}],
    }
    link = {
        "resourceType": "Coverage",
        "id": "n",
        "status": "active",
        "identifier": [{"system": "http://new.example/mb", "value": NEW_PAYER_ID}],
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"display": "New"}],
    }
    return parse_member_match_request(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "MemberPatient", "resource": patient},
                {"name": "CoverageToMatch", "resource": coverage},
                {"name": "CoverageToLink", "resource": link},
            ],
        }
    )


def _match(platform: Platform) -> MatchedMember:
    rules = MemberMatchRules(
        SINGLE_EXCHANGE, AttemptLimit(5, timedelta(hours=1)), "1245319599", "urn:umb"
    )
    requester = Requester(ClientId("newplan"), "1234567893")
    command = MemberMatchCommand(_request(), None, requester, rules, request_id="r1")
    with platform.transactions.begin() as unit:
        answer = match_member(command, unit, platform.identity)
    assert not isinstance(answer, PayerBridgeError), answer
    return answer


def _open_a_review_case(platform: Platform) -> None:
    index = platform.identity
    record = request_record(_request())
    matched = decide_request(index, record, Matcher(model_for(index), BULK), AT, DecisionId("d-1"))
    reviewed = dataclasses.replace(
        matched, member_id=None, outcome=MatchOutcome.REVIEW, candidate_ids=("ana",)
    )
    opening = review_opening("case-1", record, reviewed.evidence, reviewed.candidate_ids)
    event = decision_audit_event(reviewed, actor="cli", request_id="req-1")
    entry = DecisionToRecord(reviewed, ClientId("cli"), "key-1", opening, event)
    record_batch_decisions([entry], platform.units.identity())


def _submit_an_exchange(platform: Platform) -> ExchangeId:
    exchange_id = ExchangeId("x-1")
    with platform.transactions.begin() as unit:
        platform.partners.register(
            unit, Partner(PartnerId("old-1"), "Old", "1245319599", "http://old.example")
        )
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=exchange_id,
                partner_id=PartnerId("old-1"),
                client_id=ClientId("newplan"),
                request={
                    "patient": {"family": "Garcia", "given": "Ana", "birthDate": "1980-02-03"}
                },
                request_hash="0" * 64,
                at=AT,
            )
        )
    return exchange_id


_SEALED = (
    (identity_member_records.name, "member_id", "record"),
    (identity_reviews.name, "id", "request_record"),
    (exchanges.name, "id", "request"),
    (identity_links.name, "id", "value"),
)


def _raw_rows(settings: Settings, env: dict[str, str], table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` as the database's own driver gives it: no payerbridge code."""
    if BACKEND == "postgres":
        import psycopg

        with psycopg.connect(env["PAYERBRIDGE_DATABASE_URL"].replace("+psycopg", "")) as db:
            return list(db.execute(f"SELECT * FROM {table}").fetchall())
    with sqlite3.connect(settings.data_dir / "payerbridge.db") as db:
        return list(db.execute(f"SELECT * FROM {table}").fetchall())


def _unsealed_cells(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows without their sealed cells: a sealed value's random bytes (or their base64)
    hold a name's three letters now and then; what it seals is checked by opening it."""

    def sealed(cell: Any) -> bool:
        return isinstance(cell, str | bytes | memoryview) and key_id_of(cell) is not None

    return [tuple(cell for cell in row if not sealed(cell)) for row in rows]


def _raw_values(settings: Settings, env: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table, _, column in _SEALED:
        rows = _raw_rows(settings, env, f"(SELECT {column} FROM {table}) AS t")
        found[f"{table}.{column}"] = [row[0] for row in rows if row[0] is not None]
    return found


def test_the_identity_tables_and_exchanges_read_raw_show_no_name_birth_date_or_address(
    platform: Platform, env: dict[str, str]
) -> None:
    matched = _match(platform)
    _open_a_review_case(platform)
    exchange_id = _submit_an_exchange(platform)

    assert matched.member_id == "ana"
    for table in ("identity_member_records", "identity_reviews", "exchanges", "identity_links"):
        dump = repr(_unsealed_cells(_raw_rows(platform.settings, env, table)))
        leaked = [text for text in (*PLAINTEXT, NEW_PAYER_ID, matched.umb_value) if text in dump]
        assert not leaked, f"{table} shows {leaked}"
    values = _raw_values(platform.settings, env)
    assert all(len(found) >= 1 for found in values.values()), values
    current = platform.sealed_data.current
    assert {key_id_of(value) for found in values.values() for value in found} == {current}
    # And payerbridge reads them back as they were.
    case = platform.identity.review_request("case-1")
    assert case is not None and case == request_record(_request())
    assert platform.exchanges.get(exchange_id).request["patient"]["family"] == "Garcia"
    [found] = platform.identity.members_by_identifier(NEW_PAYER_ID, "http://new.example/mb")
    assert (found.member_id, found.value) == ("ana", NEW_PAYER_ID)
    assert _match(platform).umb_value == matched.umb_value  # the UMB found by its blind index


def test_rotation_moves_every_value_under_a_new_key_retires_the_old_and_is_audited(
    platform: Platform, env: dict[str, str]
) -> None:
    first = _match(platform)
    _open_a_review_case(platform)
    exchange_id = _submit_an_exchange(platform)
    old = platform.sealed_data.current

    report = rotate_data_keys(RotateDataKeys("cli:test", batch=1), platform.units.data_keys())

    assert report.key_id != old and report.retired == (old,) and not report.resumed
    assert (
        report.moved.items()
        >= {  # beside the member data's columns (ADR 0044)
            "identity_member_records.record": 2,
            "identity_reviews.request_record": 1,
            "exchanges.request": 1,
            "identity_links.value": 2,  # the UMB and the requester's member id
            "pull_schedules.request": 0,  # no standing pulls here
            "fhir_resources.body": 4,  # Ana's Patient and Coverage, and the requester's
        }.items()
    )
    values = _raw_values(platform.settings, env)
    assert {key_id_of(v) for found in values.values() for v in found} == {report.key_id}
    keys = {key.id: key for key in platform.sealed_data.data_keys()}
    assert keys[old].retired_at is not None and keys[report.key_id].retired_at is None
    assert keys[report.key_id].sealed_all_at is not None
    again = _match(platform)  # matching reads the moved records and links
    assert again.member_id == "ana" and again.umb_value == first.umb_value
    assert platform.exchanges.get(exchange_id).request["patient"]["given"] == "Ana"
    with platform.engine.connect() as connection:
        events = connection.execute(
            select(audit_events.c.action, audit_events.c.entity_id, audit_events.c.detail).where(
                audit_events.c.entity_type == "DataKey"
            )
        ).all()
    assert [(e.action, e.entity_id) for e in events] == [
        ("data-key.create", report.key_id),
        ("data-key.rotate", report.key_id),
    ]
    assert not any(text in "".join(e.detail for e in events) for text in PLAINTEXT)

    again = rotate_data_keys(RotateDataKeys("cli:test"), platform.units.data_keys())
    assert again.key_id != report.key_id and set(again.retired) == {report.key_id}


def test_a_rotation_cut_short_is_resumed_with_its_key(platform: Platform) -> None:
    sealed = platform.sealed_data
    with platform.transactions.begin() as unit:  # a rotation that died after its key
        key_id = sealed.make_key(unit)
    sealed.use(key_id)

    report = rotate_data_keys(RotateDataKeys("cli:test"), platform.units.data_keys())

    assert report.resumed and report.key_id == key_id
    assert report.moved["identity_member_records.record"] == 2
    assert _match(platform).member_id == "ana"


def test_values_stored_before_sealing_began_are_sealed_at_the_next_start(
    tmp_path: Path, env: dict[str, str], platform: Platform
) -> None:
    # The database as the upgrade to migration 0039 leaves it: plaintext, no data key.
    with platform.engine.begin() as connection:
        rows = connection.execute(
            select(identity_member_records.c.member_id, identity_member_records.c.record)
        ).all()
        for row in rows:
            plaintext = platform.sealed_data.open(
                "identity_member_records.record", row.record, row.member_id
            ).decode()
            connection.execute(
                update(identity_member_records)
                .where(identity_member_records.c.member_id == row.member_id)
                .values(record=plaintext)
            )
        # And the member data, as it was kept before ADR 0044 (as its bytes since 0052).
        for row in connection.execute(select(fhir_resources.c.ref, fhir_resources.c.body)).all():
            body = platform.sealed_data.open("fhir_resources.body", row.body, row.ref)
            connection.execute(
                update(fhir_resources).where(fhir_resources.c.ref == row.ref).values(body=body)
            )
        connection.execute(data_keys.delete())
    platform.close()
    (tmp_path / "data.key").unlink()

    restarted = build_platform(_settings(tmp_path, env))
    try:
        values = _raw_values(restarted.settings, env)["identity_member_records.record"]
        assert len(values) == 2
        assert {key_id_of(v) for v in values} == {restarted.sealed_data.current}
        assert _match(restarted).member_id == "ana"
        with restarted.engine.connect() as connection:
            bodies = connection.execute(select(fhir_resources.c.body)).scalars().all()
        assert bodies and {key_id_of(b) for b in bodies} == {restarted.sealed_data.current}
        [key] = restarted.sealed_data.data_keys()
        assert key.sealed_all_at is not None
        with restarted.engine.connect() as connection:
            actions = connection.execute(
                select(audit_events.c.action).where(audit_events.c.entity_type == "DataKey")
            ).scalars()
            assert list(actions) == ["data.seal"]
    finally:
        restarted.close()


def test_a_plaintext_value_after_sealing_completed_is_refused_not_matched(
    platform: Platform,
) -> None:
    with platform.engine.begin() as connection:
        connection.execute(
            update(identity_member_records)
            .where(identity_member_records.c.member_id == "ana")
            .values(record='{"family": "GARCIA"}')
        )
    with pytest.raises(DataKeyUnavailable, match="not sealed"):
        platform.identity.records_of(["ana"])


def _command(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``payerbridge`` as its entry point runs it, in this process: its exit code."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(args)
    return int(exited.value.code or 0)


def test_a_lost_key_stops_a_command_with_its_reason_exit_2_and_no_traceback(
    tmp_path: Path,
    env: dict[str, str],
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform.close()
    (tmp_path / "data.key").rename(tmp_path / "elsewhere.key")

    code = _command(["keys", "data-keys", "--data-dir", str(tmp_path)], env, monkeypatch)

    said = capsys.readouterr()
    assert code == 2, said
    assert "data-key-unavailable" in said.err and "data.key is missing" in said.err
    assert "Traceback" not in said.out + said.err
    assert not (tmp_path / "data.key").exists()  # a lost key is never replaced by a new one

    wrong = tmp_path / "wrong.key"
    wrong.write_text("ab" * 32)
    monkeypatch.setenv("PAYERBRIDGE_DATA_KEY_FILE", str(wrong))
    code = _command(["identity", "reindex", "--data-dir", str(tmp_path)], env, monkeypatch)

    said = capsys.readouterr()
    assert code == 2, said
    assert "wrong file" in said.err and "Traceback" not in said.out + said.err

    monkeypatch.setenv("PAYERBRIDGE_DATA_KEY_FILE", str(tmp_path / "elsewhere.key"))
    assert _command(["keys", "data-keys", "--data-dir", str(tmp_path)], env, monkeypatch) == 0


def test_the_kek_rotated_wraps_every_data_key_anew_and_the_old_file_no_longer_opens_them(
    tmp_path: Path, env: dict[str, str], platform: Platform
) -> None:
    _match(platform)
    new_kek = tmp_path / "elsewhere" / "data.key"
    new_kek_file(new_kek)
    rewrapped = rewrap_data_keys(
        RewrapDataKeys(read_kek(new_kek), kek_fingerprint(read_kek(new_kek)), "cli:test"),
        platform.units.data_keys(),
    )
    platform.close()

    assert rewrapped == [key.id for key in platform.sealed_data.data_keys()]
    with pytest.raises(DataKeyUnavailable, match="wrong file"):
        build_platform(_settings(tmp_path, env)).close()
    moved = build_platform(_settings(tmp_path, env).model_copy(update={"data_key_file": new_kek}))
    try:
        assert _match(moved).member_id == "ana"
        with moved.engine.connect() as connection:
            action = connection.execute(
                select(audit_events.c.action).where(audit_events.c.entity_type == "DataKey")
            ).scalar_one()
        assert action == "data-key.rewrap"
    finally:
        moved.close()


def test_links_stored_before_their_values_were_sealed_are_sealed_and_keyed_at_the_next_start(
    tmp_path: Path, env: dict[str, str], platform: Platform
) -> None:
    matched = _match(platform)
    # As migration 0042 leaves the links made before it: plaintext, no blind index.
    links = platform.identity.links_of(matched.member_id)
    with platform.engine.begin() as connection:
        for link in links:
            connection.execute(
                update(identity_links)
                .where(
                    identity_links.c.member_id == link.member_id,
                    identity_links.c.kind == link.kind,
                )
                .values(value=link.value, value_key=None)
            )
    platform.close()

    restarted = build_platform(_settings(tmp_path, env))
    try:
        values = _raw_values(restarted.settings, env)["identity_links.value"]
        assert len(values) == 2 and all(key_id_of(v) for v in values)
        assert NEW_PAYER_ID not in repr(_raw_rows(restarted.settings, env, "identity_links"))
        [found] = restarted.identity.members_by_identifier(NEW_PAYER_ID)
        assert found.member_id == "ana"
        assert _match(restarted).umb_value == matched.umb_value
    finally:
        restarted.close()


def test_a_reindex_under_a_new_secret_keys_the_links_anew(platform: Platform) -> None:
    matched = _match(platform)
    renewed = SqlIdentityStore(platform.engine, b"n" * 32, keyring=platform.sealed_data.keyring)
    assert renewed.members_by_identifier(NEW_PAYER_ID) == []  # keyed under the old secret

    with platform.transactions.begin() as unit:
        reindex_all(renewed, unit, at=unit.now)

    [found] = renewed.members_by_identifier(NEW_PAYER_ID, "http://new.example/mb")
    assert found.member_id == matched.member_id
    # The search index's blind keys too (ADR 0044): an identifier is found under the new key.
    with platform.engine.connect() as connection:
        keys = set(connection.execute(select(fhir_tokens.c.value_key)).scalars())
    assert hmac.digest(token_index_key(b"n" * 32), b"M100", "sha256").hex() in keys
    assert (
        hmac.digest(token_index_key(identity_secret(platform.settings)), b"M100", "sha256").hex()
        not in keys
    )
    assert [link.value for link in renewed.links_of(matched.member_id)] == [
        link.value for link in platform.identity.links_of(matched.member_id)
    ]


def test_member_data_stored_before_it_was_sealed_is_sealed_at_the_next_start_once(
    tmp_path: Path, env: dict[str, str], platform: Platform
) -> None:
    # A database upgraded to 0048 after ADR 0039's sealing completed: the FHIR store's
    # bodies are plaintext, and no pass has sealed their column yet (ADR 0044).
    with platform.engine.begin() as connection:
        rows = connection.execute(select(fhir_resources.c.ref, fhir_resources.c.body)).all()
        for row in rows:
            body = platform.sealed_data.open("fhir_resources.body", row.body, row.ref)
            connection.execute(
                update(fhir_resources).where(fhir_resources.c.ref == row.ref).values(body=body)
            )
        connection.execute(
            sealed_columns.delete().where(sealed_columns.c.name == "fhir_resources.body")
        )
    platform.close()

    restarted = build_platform(_settings(tmp_path, env))
    try:
        with restarted.engine.connect() as connection:
            bodies = connection.execute(select(fhir_resources.c.body)).scalars().all()
            names = set(connection.execute(select(sealed_columns.c.name)).scalars())
        assert len(bodies) == len(rows)
        assert {key_id_of(body) for body in bodies} == {restarted.sealed_data.current}
        assert "fhir_resources.body" in names
        assert restarted.members.read("Patient", "ana") is not None
        # Sealed once: a plaintext body written afterwards is refused, not read.
        with restarted.engine.begin() as connection:
            connection.execute(
                update(fhir_resources)
                .where(fhir_resources.c.ref == "Patient/ana")
                .values(body=b'{"resourceType": "Patient", "id": "ana"}')
            )
        with pytest.raises(DataKeyUnavailable, match="not sealed"):
            restarted.members.read("Patient", "ana")
    finally:
        restarted.close()
