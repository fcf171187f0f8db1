"""The member's opt-in on the new-payer side (PDex §pdex-138: payer-to-payer is opt-in).

Captured once, kept as a consent of role ``receive`` with the HRex Consent we send with
every ``$member-match`` to the old payer it names. Date-only periods are read as whole
days in our configured zone; the old payer reads the same dates in its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from payerbridge.consent.hrex import Provision, build_hrex_consent, consent_hash
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
from payerbridge.fhir.member_match import MEMBER_PATIENT_REF
from payerbridge.routing.model import Organization, Partner
from payerbridge.types import ClientId, MemberId

__all__ = ["OptIn", "opt_in_consent"]


@dataclass(frozen=True)
class OptIn:
    """A member's opt-in as a client brought it: what the member granted, who the member
    is at our plan, and the old payer that may disclose their data to us."""

    grant: ConsentGrant
    member_id: MemberId
    old_payer: Partner
    client_id: ClientId


def opt_in_consent(
    opt_in: OptIn, *, consent_id: ConsentId, us: Organization, zone: ZoneInfo, at: datetime
) -> StoredConsent:
    """The opt-in as a stored consent: its old payer may disclose the member's data to us."""
    grant, old_payer = opt_in.grant, opt_in.old_payer
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
        member_id=opt_in.member_id,
        policy=policy,
        period_start=start_of_day(grant.start, zone),
        period_end=end_of_day(grant.end, zone),
        source_npi=old_payer.npi,
        recipient_npis=(us.npi,),
        client_id=opt_in.client_id,
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
