"""An onboarding against a scripted old payer that matches two members and then, when its
export runs, leaves one of them out (its consent decided again there, §pdex-167): that
member's result says so, and only the other's history is kept."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.api.schemas import onboarding_requests
from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.fhir.bulk_member_match import (
    MatchResult,
    MemberResult,
    parse_bulk_member_match_request,
    result_groups,
)
from payerbridge.onboarding.model import NewOnboarding
from payerbridge.onboarding.ports import BulkStatus
from payerbridge.onboarding.service import accept_onboarding, proceed, result_counts
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Organization, Partner
from payerbridge.types import ClientId, OnboardingId, PartnerId
from tests.builders import a_patient

OLD = Partner(PartnerId("old"), "Old Plan", "1245319599", "http://old.example/fhir")
NEW_NPI = "1234567893"


class LeavesOneOut:
    """The old payer: every submitted member matched (its Patient ``old-<n>``), and an
    export that carries the first member's history only, naming the other in its error
    file."""

    def __init__(self) -> None:
        self.kicked_off: list[str] = []

    def kick_off(
        self, partner: Partner, path: str, body: dict[str, Any], *, idempotency_key: str
    ) -> str:
        self.kicked_off.append(path)
        if path == "Group/$bulk-member-match":
            self._members = parse_bulk_member_match_request(body)
            return f"{OLD.base_url}/bulk-status/match"
        return f"{OLD.base_url}/bulk-status/export"

    def poll(self, partner: Partner, status_url: str, *, idempotency_key: str) -> BulkStatus:
        kind = status_url.rsplit("/", 1)[1]
        files = {"match": ["Group"], "export": ["Patient", "Condition"]}[kind]
        manifest = {
            "output": [{"type": t, "url": f"{OLD.base_url}/files/{t}"} for t in files],
            "error": [{"type": "OperationOutcome", "url": f"{OLD.base_url}/files/errors"}]
            if kind == "export"
            else [],
        }
        return BulkStatus(manifest=manifest)

    def download(self, partner: Partner, url: str, *, idempotency_key: str) -> bytes:
        name = url.rsplit("/", 1)[1]
        if name == "Group":
            results = [
                MemberResult(member, MatchResult.MATCHED, f"old-{n}")
                for n, member in enumerate(self._members)
            ]
            groups = result_groups(
                results,
                group_ids={bucket: f"g-{bucket.value}" for bucket in MatchResult},
                requester=Organization("New Plan", NEW_NPI),
                us=OLD.organization,
                matched_at=datetime(2027, 1, 1, tzinfo=UTC),
            )
            return _ndjson(groups)
        if name == "Patient":
            return _ndjson([a_patient("old-0", given="Ana", family="Garcia")])
        if name == "Condition":
            condition = {
                "resourceType": "Condition",
                "id": "old-0-asthma",
                "subject": {"reference": "Patient/old-0"},
                "code": {"text": "asthma"},
            }
            return _ndjson([condition])
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing",
                       "details": {"text": "Patient/old-1 was not exported"}}],
        }  # fmt: skip
        return _ndjson([outcome])

    def refresh_credentials(self, partner: Partner) -> None:
        pass


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


def member(given: str, family: str, old_member: str, new_member: str) -> dict[str, Any]:
    return {
        "member": {"given": [given], "family": family, "birth_date": "1980-02-03",
                   "gender": "female"},
        "old_coverage": {"member_id": old_member},
        "new_coverage": {"member_id": new_member, "start": "2027-01-01"},
        "consent": {"policy": "sensitive", "start": "2026-01-01", "end": "2099-01-01",
                    "source_reference": f"DocumentReference/optin-{new_member}"},
    }  # fmt: skip


def test_a_member_the_old_payer_leaves_out_of_its_export_is_reported_not_exported(
    platform: Platform,
) -> None:
    old = LeavesOneOut()
    uow = dataclasses.replace(platform.units.onboarding(), bulk=old)
    requests = onboarding_requests(
        "old", [member("Ana", "Garcia", "M1", "N-ANA"), member("Bea", "Garcia", "M2", "N-BEA")]
    )
    run = accept_onboarding(
        NewOnboarding(
            OnboardingId("run-1"),
            PartnerId("old"),
            requests,
            client_id=ClientId("ops"),
            request_id=None,
        ),
        uow,
    )
    for _ in range(20):
        if proceed(run.id, uow).done:
            break
    else:
        pytest.fail("the onboarding did not finish")
    members = uow.onboardings.members(run.id)
    assert [(m.member_id, m.result, m.imported) for m in members] == [
        ("N-ANA", "match", 3),  # her Patient, her Condition and our receipt Provenance
        ("N-BEA", "notexported", None),
    ]
    counts = result_counts(members)
    assert counts["match"] == 1 and counts["notexported"] == 1
    assert old.kicked_off[-1] == "Group/g-match/$davinci-data-export"
