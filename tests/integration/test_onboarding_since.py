"""Incremental onboardings against a scripted old payer that honours ``_since``: a first
run reads everything and reflects its export's transactionTime; a second, asked
``since`` ``last``, sends ``_since`` that time, keeps the one member's new Condition
under the ids the first run gave its record (nothing twice, nothing removed), and says
the other member's answer held nothing new (issue 54, ADR 0040)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from payerbridge.api.schemas import onboarding_requests
from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.errors import InvalidInput
from payerbridge.fhir.bulk_member_match import (
    BulkMember,
    MatchResult,
    MemberResult,
    parse_bulk_member_match_request,
    result_groups,
)
from payerbridge.onboarding.model import NewOnboarding, Onboarding
from payerbridge.onboarding.ports import BulkStatus
from payerbridge.onboarding.service import accept_onboarding, member_reason, proceed
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Organization, Partner
from payerbridge.store.members import opened_resource
from payerbridge.store.tables import fhir_resources
from payerbridge.timestamps import parse_instant
from payerbridge.types import ClientId, OnboardingId, PartnerId
from tests.builders import a_patient
from tests.integration.test_onboarding_left_out import member

OLD = Partner(PartnerId("old"), "Old Plan", "1245319599", "http://old.example/fhir")
NEW_NPI = "1234567893"
FIRST_EXPORT = "2027-03-01T00:00:00Z"
SECOND_EXPORT = "2027-04-01T00:00:00Z"


def _at(resource: dict[str, Any], stamp: str) -> dict[str, Any]:
    return {**resource, "meta": {"lastUpdated": stamp}}


def _condition(patient: str, name: str, stamp: str) -> dict[str, Any]:
    return _at(
        {
            "resourceType": "Condition",
            "id": f"{patient}-{name}",
            "subject": {"reference": f"Patient/{patient}"},
            "code": {"text": name},
        },
        stamp,
    )


class OldPayer:
    """Matches every member (Ana is its Patient ``old-0``, Bea ``old-1``) and exports, of
    what it holds, what was last updated after the export's ``_since`` (the Patient
    always, as PDex says)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = [
            _at(a_patient("old-0", given="Ana", family="Garcia"), "2026-01-01T00:00:00Z"),
            _at(a_patient("old-1", given="Bea", family="Garcia"), "2026-01-01T00:00:00Z"),
            _condition("old-0", "asthma", "2026-02-01T00:00:00Z"),
            _condition("old-1", "gout", "2026-02-01T00:00:00Z"),
        ]
        self.export_bodies: list[dict[str, Any]] = []
        self.transaction_time = FIRST_EXPORT

    def kick_off(
        self, partner: Partner, path: str, body: dict[str, Any], *, idempotency_key: str
    ) -> str:
        if path == "Group/$bulk-member-match":
            self._members = parse_bulk_member_match_request(body)
            return f"{OLD.base_url}/bulk-status/match"
        self.export_bodies.append(body)
        return f"{OLD.base_url}/bulk-status/export-{len(self.export_bodies)}"

    def poll(self, partner: Partner, status_url: str, *, idempotency_key: str) -> BulkStatus:
        kind = status_url.rsplit("/", 1)[1]
        kind, name = ("Group", "Group") if kind == "match" else ("Patient", kind)
        return BulkStatus(
            manifest={
                "transactionTime": self.transaction_time,
                "output": [{"type": kind, "url": f"{OLD.base_url}/files/{name}"}],
            }
        )

    def download(self, partner: Partner, url: str, *, idempotency_key: str) -> bytes:
        name = url.rsplit("/", 1)[1]
        if name == "Group":
            results = [
                MemberResult(member, MatchResult.MATCHED, _OLD_IDS[_given(member)])
                for member in self._members
            ]
            groups = result_groups(
                results,
                group_ids={bucket: f"g-{bucket.value}" for bucket in MatchResult},
                requester=Organization("New Plan", NEW_NPI),
                us=OLD.organization,
                matched_at=datetime(2027, 1, 1, tzinfo=UTC),
            )
            return _ndjson(groups)
        asked = {p["name"]: p for p in self.export_bodies[-1]["parameter"]}
        since = parse_instant(asked["_since"]["valueInstant"]) if "_since" in asked else None
        return _ndjson(
            [
                r
                for r in self.records
                if since is None
                or r["resourceType"] == "Patient"
                or parse_instant(r["meta"]["lastUpdated"]) > since  # type: ignore[operator]
            ]
        )

    def refresh_credentials(self, partner: Partner) -> None:
        pass


_OLD_IDS = {"Ana": "old-0", "Bea": "old-1"}  # who each member is at the old payer


def _given(member: BulkMember) -> str:
    return str(member.request.patient["name"][0]["given"][0])


def _ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in resources)


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    settings = load_settings(
        data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"), org_npi=NEW_NPI
    )
    platform = build_platform(settings)
    store_partner(StorePartner(OLD, "test"), platform.units.partners())
    yield platform
    platform.close()


MEMBERS = [member("Ana", "Garcia", "M1", "N-ANA"), member("Bea", "Garcia", "M2", "N-BEA")]


def _run(uow: OnboardingUnit, run_id: str, since: Any = None) -> Onboarding:
    run = accept_onboarding(
        NewOnboarding(
            OnboardingId(run_id),
            PartnerId("old"),
            onboarding_requests("old", MEMBERS),
            client_id=ClientId("ops"),
            request_id=None,
            since=since,
        ),
        uow,
    )
    for _ in range(20):
        if proceed(run.id, uow).done:
            break
    else:
        pytest.fail("the onboarding did not finish")
    ended = uow.onboardings.get(run.id)
    assert ended is not None and ended.status.value == "completed", ended
    return ended


def _stored(platform: Platform) -> dict[str, dict[str, Any]]:
    """What the new payer holds from onboardings, by where the old payer kept it."""
    with platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.body).where(
                fhir_resources.c.source.like("onboarding:%")
            )
        ).all()
    opened = [opened_resource(platform.engine, row.ref, row.body) for row in rows]
    bodies = [body for body in opened if "source" in body["meta"]]
    by_source = {r["meta"]["source"].rsplit("/fhir/", 1)[1]: r for r in bodies}
    assert len(by_source) == len(bodies), "a resource of the old payer's is held twice"
    return by_source


def test_a_run_since_the_last_brings_only_what_changed_and_says_when_nothing_did(
    platform: Platform,
) -> None:
    old = OldPayer()
    uow = dataclasses.replace(platform.units.onboarding(), bulk=old)
    with pytest.raises(InvalidInput, match="no completed onboarding with 'old' received data"):
        _run(uow, "too-early", since="last")

    first = _run(uow, "run-1")
    assert first.since is None and first.received_at == parse_instant(FIRST_EXPORT)
    assert [p["name"] for p in old.export_bodies[-1]["parameter"]] == ["exportType"]
    held = _stored(platform)
    assert set(held) == {"Patient/old-0", "Patient/old-1", "Condition/old-0-asthma",
                         "Condition/old-1-gout"}  # fmt: skip

    # The old payer records a Condition for Bea; Ana's record does not change.
    old.records.append(_condition("old-1", "migraine", "2027-03-15T00:00:00Z"))
    old.transaction_time = SECOND_EXPORT
    second = _run(uow, "run-2", since="last")
    assert second.since == parse_instant(FIRST_EXPORT)
    assert second.received_at == parse_instant(SECOND_EXPORT)
    assert {"name": "_since", "valueInstant": FIRST_EXPORT} in old.export_bodies[-1]["parameter"]
    members = uow.onboardings.members(second.id)
    assert [(m.member_id, m.imported, m.changed) for m in members] == [
        ("N-ANA", 2, 0),  # her Patient, unchanged, and our receipt
        ("N-BEA", 3, 1),  # her Patient, the migraine, and our receipt
    ]
    assert [member_reason(m, second.since)["code"] for m in members] == [  # type: ignore[index]
        "nothing-new",
        "completed",
    ]
    now_held = _stored(platform)
    # The migraine added under Bea's record; nothing removed, nothing kept twice.
    assert set(now_held) == set(held) | {"Condition/old-1-migraine"}
    assert {k: r["id"] for k, r in now_held.items() if k in held} == {
        k: r["id"] for k, r in held.items()
    }
    # Under Bea's one Patient, where the first run kept her record (ADR 0054): her old
    # payer's Patient is a source record linked to it.
    (bea,) = [link["other"]["reference"] for link in held["Patient/old-1"]["link"]]
    assert held["Condition/old-1-gout"]["subject"]["reference"] == bea
    assert now_held["Condition/old-1-migraine"]["subject"]["reference"] == bea


class ExportsAtTimes(OldPayer):
    """Each export reflects its own time: the second one's earlier than the first's."""

    TIMES = ("2027-03-02T00:00:00Z", "2027-03-01T12:00:00Z")

    def poll(self, partner: Partner, status_url: str, *, idempotency_key: str) -> BulkStatus:
        status = super().poll(partner, status_url, idempotency_key=idempotency_key)
        kind = status_url.rsplit("/", 1)[1]
        if kind.startswith("export-") and status.manifest is not None:
            number = int(kind.split("-")[1])
            return BulkStatus(
                manifest={**status.manifest, "transactionTime": self.TIMES[number - 1]}
            )
        return status


def test_a_run_of_several_chunks_reflects_its_earliest_export(platform: Platform) -> None:
    """Asked since the earliest, the next run misses nothing any chunk's export could have."""
    uow = dataclasses.replace(platform.units.onboarding(), bulk=ExportsAtTimes(), chunk_members=1)
    run = _run(uow, "run-chunks")
    assert uow.onboardings.chunks(run.id)[-1].number == 1  # two chunks, two exports
    assert run.received_at == parse_instant(ExportsAtTimes.TIMES[1])
