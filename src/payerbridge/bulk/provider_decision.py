"""How a provider's export decides (Provider Access, ADR 0059; see
``bulk.provider_export``): each member again when the job reaches her, and the terms
what goes is released under."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from payerbridge.audit.model import AuditEvent
from payerbridge.bulk.model import BulkJob
from payerbridge.bulk.unit import BulkUnit
from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.everything import ReleaseTerms
from payerbridge.disclosure.window import ExchangeWindow
from payerbridge.errors import NotFound
from payerbridge.provider_access.decisions import ProviderAccessReads
from payerbridge.types import MemberId

__all__ = ["PROVIDER_ACCESS_FLOOR", "ProviderDecision", "provider_reads", "provider_terms"]

# Provider Access covers dates of service from this day on (42 CFR 422.121(a)(2)).
PROVIDER_ACCESS_FLOOR = date(2016, 1, 1)


def provider_reads(uow: BulkUnit) -> ProviderAccessReads:
    """The decision's reads; a platform that does not serve Provider Access has no
    provider's Group at all."""
    if uow.provider_access is None:
        raise NotFound("Provider Access is not served here")
    return uow.provider_access


def provider_terms(uow: BulkUnit, now: datetime) -> ReleaseTerms:
    """What a provider's export goes under: the ``provider-access`` scope, service
    dates from 2016-01-01 and prior authorizations changed within the year, the
    ``regular`` policy (sensitive records need a consent this API does not carry)."""
    rules = uow.rules
    floor = datetime.combine(PROVIDER_ACCESS_FLOOR, time.min, UTC)
    window = ExchangeWindow(now, PROVIDER_ACCESS_FLOOR, max(floor, now - timedelta(days=365)))
    return ReleaseTerms(ConsentPolicy.REGULAR, rules.segmentation, rules.provider_scope, window)


@dataclass
class ProviderDecision:
    """A chunk's members decided for the job's provider, at the chunk's time."""

    job: BulkJob
    may_go: frozenset[MemberId]
    at: datetime

    @classmethod
    def of_chunk(
        cls, uow: BulkUnit, job: BulkJob, members: Collection[MemberId], at: datetime
    ) -> ProviderDecision:
        """The chunk's ``members`` decided at ``at`` (only theirs read)."""
        decided = provider_reads(uow).decide(job.requester_npi, at, among=members)
        return cls(job, frozenset(decided.members), at)

    def decide(self, member_id: MemberId) -> tuple[ConsentPolicy | None, AuditEvent]:
        """The policy the member goes under (None: she does not go), and its audit."""
        permitted = member_id in self.may_go
        event = AuditEvent(
            at=self.at,
            actor=self.job.client_id,
            action="provider-access.decision",
            entity_type="Patient",
            entity_id=member_id,
            outcome="permit" if permitted else "deny",
            request_id=self.job.id,
            detail={
                "hop": "provider-export",
                "provider_npi": self.job.requester_npi,
                "basis": "attributed" if permitted else "not-attributed-or-opted-out",
                "policy": ConsentPolicy.REGULAR.value if permitted else None,
            },
        )
        return (ConsentPolicy.REGULAR if permitted else None), event
