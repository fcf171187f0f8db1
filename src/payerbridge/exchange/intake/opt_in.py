"""The member's opt-in on the new-payer side (PDex §pdex-138: payer-to-payer is opt-in).

Captured once, kept as a consent of role ``receive`` with the HRex Consent we send with
every ``$member-match`` to the old payer it names. Date-only periods are read as whole
days in our configured zone; the old payer reads the same dates in its own.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from payerbridge.consent.model import (
    POLICY_VERSION,
    ConsentId,
    ConsentPolicy,
    ConsentRecord,
    ConsentRole,
    StoredConsent,
    end_of_day,
    start_of_day,
)
from payerbridge.exchange.model import ConsentGrant
from payerbridge.fhir.consent import Provision, build_hrex_consent, consent_hash
from payerbridge.fhir.member_match import MEMBER_PATIENT_REF
from payerbridge.routing.model import Organization, Partner
from payerbridge.types import ClientId, MemberId

__all__ = ["opt_in_consent"]


def opt_in_consent(
    grant: ConsentGrant,
    *,
    consent_id: ConsentId,
    member_id: MemberId,
    old_payer: Partner,
    us: Organization,
    client_id: ClientId,
    zone: ZoneInfo,
    at: datetime,
) -> StoredConsent:
    """The opt-in as a stored consent: ``old_payer`` may disclose the member's data to us."""
    policy = ConsentPolicy(grant.policy)
    resource = build_hrex_consent(
        consent_id="1",  # local to the Parameters it travels in; keeps the hash content-only
        patient_ref=MEMBER_PATIENT_REF,
        performer_ref=MEMBER_PATIENT_REF,
        provision=Provision(policy, grant.start, grant.end, old_payer.organization, us),
        source_reference=grant.source_reference,
    )
    record = ConsentRecord(
        consent_id=consent_id,
        member_id=member_id,
        policy=policy,
        period_start=start_of_day(grant.start, zone),
        period_end=end_of_day(grant.end, zone),
        source_npi=old_payer.npi,
        recipient_npis=(us.npi,),
        client_id=client_id,
        performer=MEMBER_PATIENT_REF,
        resource_hash=consent_hash(resource),
        policy_version=POLICY_VERSION,
    )
    return StoredConsent(
        record=record,
        role=ConsentRole.RECEIVE,
        partner_id=old_payer.id,
        source_reference=grant.source_reference,
        resource=resource,
        created_at=at,
    )
