"""``Group/$provider-member-match`` (Provider Access, ADR 0059): what becomes of a member
the identity engine matched, in the job's unit of work (``bulk.member_match`` runs the
job as it runs ``$bulk-member-match``'s).

The provider's attestation (the MemberBundle's Consent) is checked
(``provider_access.attestation``): not verified, the member goes to NonMatchedMembers, as
the OperationDefinition has it. Verified, it attributes the member to the provider for
the days it holds (kept, audited) and, unless she has opted out of the provider, she
goes to MatchedMembers; opted out, to ConsentConstrainedMembers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from payerbridge.audit.model import AuditEvent
from payerbridge.bulk.model import BulkJob
from payerbridge.bulk.provider_decision import provider_reads
from payerbridge.bulk.unit import BulkUnit
from payerbridge.fhir.bulk_member_match import BulkMember, MatchResult
from payerbridge.provider_access.attestation import verify_attestation
from payerbridge.provider_access.model import (
    Attribution,
    AttributionBasis,
    OptOutChoice,
    is_opted_out,
)
from payerbridge.types import MemberId

__all__ = ["ProviderMatches"]


def _event(
    job: BulkJob, member_id: MemberId, outcome: str, at: datetime, **detail: object
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=job.client_id,
        action="provider-access.attestation",
        entity_type="Patient",
        entity_id=member_id,
        outcome=outcome,
        request_id=job.id,
        detail={"provider_npi": job.requester_npi, "bulk_job": job.id, **detail},
    )


@dataclass
class ProviderMatches:
    """A chunk's matched members' outcomes for the job's provider. The members' opt-out
    choices are read before the chunk's unit of work begins (``of_chunk``): a read on
    another connection inside it could wait on the pool PostgreSQL's writer shares."""

    job: BulkJob
    now: datetime
    today: date
    choices: dict[MemberId, list[OptOutChoice]]

    @classmethod
    def of_chunk(
        cls, uow: BulkUnit, job: BulkJob, member_ids: list[MemberId], now: datetime
    ) -> ProviderMatches:
        reads = provider_reads(uow)
        today = reads.calendar.local_day(now)
        return cls(job, now, today, reads.opt_outs.of_members(member_ids))

    def outcome(
        self, uow: BulkUnit, member: BulkMember, member_id: MemberId
    ) -> tuple[MatchResult, list[AuditEvent]]:
        """The matched member's bucket, and the audit events of its attestation; a
        verified attestation's attribution is written in ``uow``."""
        job, now, npi = self.job, self.now, self.job.requester_npi
        attested = verify_attestation(member.request.consent or {}, npi, now, self.today)
        if isinstance(attested, str):
            event = _event(job, member_id, "not-verified", now, reason=attested)
            return MatchResult.NOT_MATCHED, [event]
        attribution = Attribution(
            npi, member_id, attested.start, attested.end, AttributionBasis.ATTESTATION, job.id
        )
        provider_reads(uow).attributions.add(uow, [attribution])
        events = [_event(job, member_id, "verified", now, until=attested.end.isoformat())]
        if is_opted_out(self.choices.get(member_id, []), npi, now):
            return MatchResult.CONSENT_CONSTRAINED, events
        return MatchResult.MATCHED, events
