"""The bulk room's unit of work in memory: jobs and Groups (tests/fakes.py), a clock that
moves when told, and ids numbered in order. No database."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from payerbridge.bulk.ports import StoredGroup
from payerbridge.bulk.unit import BulkUnit
from payerbridge.fhir.bulk_member_match import MatchResult
from payerbridge.security.model import Principal
from payerbridge.types import BulkJobId, ClientId
from tests.fakes import (
    FakeClock,
    InMemoryAuditLog,
    InMemoryBulkJobs,
    InMemoryConsentStore,
    InMemoryTransactions,
)

NEW_PLAN = ClientId("newplan")
NEW_NPI, OTHER_NPI = "1234567893", "1245319599"
WHOLE = Principal(NEW_PLAN, NEW_NPI, frozenset({"system/*.rs", "system/Group.rs"}))


def a_group(
    group_id: str,
    *,
    client_id: ClientId = NEW_PLAN,
    result: MatchResult = MatchResult.MATCHED,
    npi: str = NEW_NPI,
    expires_at: datetime | None = None,
    members: tuple[str, ...] = ("m1", "m2"),
) -> StoredGroup:
    created = datetime.fromisoformat("2026-11-22T08:00:00+00:00")
    body: dict[str, Any] = {
        "resourceType": "Group",
        "id": group_id,
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }
    return StoredGroup(
        id=group_id,
        job_id=BulkJobId("job-0"),
        client_id=client_id,
        requester_npi=npi,
        result=result.value,
        created_at=created,
        expires_at=expires_at or created + timedelta(days=1),
        body=body,
    )


class Bulk:
    """The unit of work and what its stores keep, for a test to look into."""

    def __init__(self, *groups: StoredGroup) -> None:
        self.clock = FakeClock()
        self.audit = InMemoryAuditLog()
        self.jobs = InMemoryBulkJobs(*groups)
        self.consents = InMemoryConsentStore()
        self.transactions = InMemoryTransactions(
            self.audit, self.jobs, self.consents, clock=self.clock
        )
        ids = itertools.count(1)
        self.uow = BulkUnit(
            transactions=self.transactions,
            jobs=self.jobs,
            identity=None,
            consents=self.consents,
            members=None,
            rules=None,
            clock=self.clock,
            mint_id=lambda: f"id-{next(ids)}",
        )


def a_bulk() -> Bulk:
    """Groups of the caller's: matched (m1 twice), not matched, of another requester NPI;
    and one of another client's."""
    return Bulk(
        a_group("matched", members=("m1", "m2", "m1")),
        a_group("nonmatched", result=MatchResult.NOT_MATCHED),
        a_group("theirs", client_id=ClientId("otherplan")),
        a_group("other-npi", npi=OTHER_NPI),
    )
