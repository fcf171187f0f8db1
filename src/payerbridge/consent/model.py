"""Consent as data (pure): the policy, the reasons a consent can deny, the record and the decision.

A ``ConsentRecord`` is a member's HRex consent after it was validated: who may
disclose (``source_npi``), who may receive (``recipient_npis``), which data
(``policy``) and for how long (``period_start``..``period_end``). Everything is
timezone-aware; no function here reads the clock.

Period semantics (decided here, relied on by ``policy.evaluate``):

- ``period_start`` is the first instant the consent is in force (inclusive).
- ``period_end`` is the last instant it is in force (inclusive).
- A date-only bound covers the whole day in the zone the caller names:
  :func:`start_of_day` and :func:`end_of_day` give those instants. ``datetime``
  resolves microseconds, so the end of a day is its last microsecond, which is
  exactly "before midnight of the next day".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, NewType
from zoneinfo import ZoneInfo

from payerbridge.types import ClientId, MemberId, PartnerId

__all__ = [
    "PresentedConsent",
    "POLICY_VERSION",
    "AcceptPresentedConsent",
    "ConsentDecision",
    "ConsentId",
    "ConsentPolicy",
    "ConsentRecord",
    "ConsentRequest",
    "ConsentRole",
    "DenyReason",
    "DisclosureRequest",
    "Hop",
    "OutboundRequest",
    "Purpose",
    "Requester",
    "RevokeConsent",
    "StoredConsent",
    "end_of_day",
    "is_own_organization",
    "reason_text",
    "require_aware",
    "revoke",
    "start_of_day",
]

# Bump when the meaning of a decision changes (check order, period semantics,
# segmentation defaults) so that audit entries say which rules produced them.
POLICY_VERSION = "consent-policy/1"

# The id we give a stored consent. Belongs in ``payerbridge.types`` once the room settles.
ConsentId = NewType("ConsentId", str)

_ONE_MICROSECOND = timedelta(microseconds=1)


class ConsentPolicy(StrEnum):
    """The two HRex consent policies, by our short names (``fhir.codes.CONSENT_POLICY``)."""

    REGULAR = "regular"  # all data except what U.S. state or federal law treats as sensitive
    SENSITIVE = "sensitive"  # all data, sensitive included


class Purpose(StrEnum):
    """Why data is asked for. An HRex consent authorizes payer-to-payer exchange only."""

    PAYER_TO_PAYER = "payer-to-payer"


class DenyReason(StrEnum):
    """Machine-readable reasons a consent does not permit a request."""

    MALFORMED = "malformed"
    REVOKED = "revoked"
    MEMBER_MISMATCH = "member-mismatch"
    SOURCE_MISMATCH = "source-mismatch"
    RECIPIENT_MISMATCH = "recipient-mismatch"
    POLICY_UNSUPPORTED = "policy-unsupported"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    # No consent on file covers this member and requester (decided by the service, which
    # looks consents up; ``evaluate`` always has one in hand).
    NO_CONSENT = "no-consent"


# One sentence each that a member, an operator or a partner payer can act on.
# No member data: these go into OperationOutcomes, audit entries and the console.
_REASON_TEXT: dict[DenyReason, str] = {
    DenyReason.MALFORMED: (
        "The consent or the request cannot be evaluated because it is incomplete or not valid; "
        "send a complete HRex Consent with a supported purpose and data scope."
    ),
    DenyReason.REVOKED: (
        "The member revoked this consent; no data can be shared under it. "
        "A new consent from the member is needed."
    ),
    DenyReason.MEMBER_MISMATCH: (
        "The consent was given by a different member than the one whose data was requested."
    ),
    DenyReason.SOURCE_MISMATCH: (
        "The consent does not name this payer as the organization allowed to disclose the data; "
        "ask the member for a consent that names this payer as the source."
    ),
    DenyReason.RECIPIENT_MISMATCH: (
        "The consent does not name the requesting organization as a recipient; "
        "only the organizations the member named may receive the data."
    ),
    DenyReason.POLICY_UNSUPPORTED: (
        "This payer cannot comply with the consent's policy for the data requested, for "
        "example because it cannot separate sensitive data from other data; a consent under "
        "a policy this payer supports is needed."
    ),
    DenyReason.NOT_YET_VALID: (
        "The consent period has not started yet; retry on or after its start date."
    ),
    DenyReason.EXPIRED: ("The consent period has ended; a new consent from the member is needed."),
    DenyReason.NO_CONSENT: (
        "No consent from the member permits the requesting organization to receive this "
        "data; present the member's HRex Consent with $member-match first."
    ),
}


def reason_text(reason: DenyReason) -> str:
    """The human-readable sentence for a deny reason (safe to show to anyone)."""
    return _REASON_TEXT[reason]


class ConsentRole(StrEnum):
    """Which side of a consent we are on."""

    DISCLOSE = "disclose"  # a requesting payer presented it to us; we hold the data
    RECEIVE = "receive"  # our member's opt-in; we ask another payer for the data


@dataclass(frozen=True)
class Requester:
    """Who is asking: the OAuth client and the organization (by NPI) it acts for."""

    client_id: ClientId
    npi: str


def is_own_organization(requester: Requester, data_holder_npi: str) -> bool:
    """Whether the requester acts for the data holder itself: the plan reading its own
    members' records (ADR 0052). An HRex consent governs what another payer may take,
    not what the plan holds; a client's NPI is proven, not claimed (ADR 0026)."""
    return bool(data_holder_npi) and requester.npi == data_holder_npi


@dataclass(frozen=True)
class ConsentRecord:
    """A validated HRex consent as the engine reasons about it (the raw resource is kept apart)."""

    consent_id: ConsentId
    member_id: MemberId  # our Patient id for the member
    policy: ConsentPolicy
    period_start: datetime  # first instant in force (inclusive)
    period_end: datetime  # last instant in force (inclusive)
    source_npi: str  # the payer allowed to disclose: us, on the data-holder side
    recipient_npis: tuple[str, ...]  # the organizations allowed to receive
    client_id: ClientId  # the client that presented the consent (for audit)
    performer: str  # Consent.performer reference: who gave the consent
    resource_hash: str  # sha256 of the canonical resource as received
    policy_version: str  # the engine rules in force when the consent was accepted
    revoked_at: datetime | None = None
    revoked_by: str | None = None


@dataclass(frozen=True)
class StoredConsent:
    """A consent as we keep it: the record, our side of it, and the resource it came from."""

    record: ConsentRecord
    role: ConsentRole
    partner_id: PartnerId | None  # the old payer an opt-in names (role ``receive``)
    source_reference: str  # the signed consent document, for out-of-band audit only
    resource: dict[str, Any]  # the HRex Consent as received or as we send it
    created_at: datetime

    @property
    def consent_id(self) -> ConsentId:
        return self.record.consent_id


@dataclass(frozen=True)
class ConsentDecision:
    """The outcome of one evaluation.

    ``policy`` is the *effective* policy of a permit: ``REGULAR`` means the caller must
    withhold sensitive data (segment) before sending anything; ``SENSITIVE`` means all
    data may go. It is None when denied.
    """

    permitted: bool
    reason: DenyReason | None
    text: str
    policy: ConsentPolicy | None
    policy_version: str = POLICY_VERSION

    @classmethod
    def permit(
        cls, policy: ConsentPolicy, *, policy_version: str = POLICY_VERSION
    ) -> ConsentDecision:
        if policy is ConsentPolicy.SENSITIVE:
            text = "The consent permits sharing all data, sensitive data included."
        else:
            text = "The consent permits sharing data that is not sensitive; the rest is withheld."
        return cls(True, None, text, policy, policy_version)

    @classmethod
    def deny(
        cls, reason: DenyReason, *, detail: str | None = None, policy_version: str = POLICY_VERSION
    ) -> ConsentDecision:
        """A denial; ``detail`` names the element at fault (never its value)."""
        text = reason_text(reason)
        if detail:
            text = f"{text} ({detail})"
        return cls(False, reason, text, None, policy_version)


def require_aware(value: datetime, name: str) -> None:
    """Raise ValueError for a naive datetime: comparing it with an instant is a bug."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware")


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC (a date-only period start)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The last instant of ``day`` in ``zone``, in UTC (a date-only period end, inclusive)."""
    # From the next midnight rather than 23:59:59.999999 local, so that days of 23
    # or 25 hours (daylight saving changes) end where the calendar says they do.
    return start_of_day(day + timedelta(days=1), zone) - _ONE_MICROSECOND


def revoke(consent: ConsentRecord, *, at: datetime, by: str) -> ConsentRecord:
    """The consent revoked at ``at`` by ``by``; a second revocation keeps the first.

    A revocation never moves later: once data stopped flowing it stays stopped.
    """
    require_aware(at, "at")
    if not by.strip():
        raise ValueError("by must name who revoked the consent")
    if consent.revoked_at is not None and consent.revoked_at <= at:
        return consent
    return dataclasses.replace(consent, revoked_at=at, revoked_by=by)


@dataclass(frozen=True)
class PresentedConsent:
    """A Consent a requesting payer presented (HRex), read and checked, before it is tied to
    a matched member and given an id."""

    policy: ConsentPolicy
    period_start: datetime  # UTC, inclusive
    period_end: datetime  # UTC, inclusive
    source_npi: str
    recipient_npis: tuple[str, ...]
    client_id: ClientId
    performer: str
    source_reference: str
    resource_hash: str
    resource: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def to_record(
        self, consent_id: ConsentId, *, member_id: MemberId, policy_version: str = POLICY_VERSION
    ) -> ConsentRecord:
        return ConsentRecord(
            consent_id=consent_id,
            member_id=member_id,
            policy=self.policy,
            period_start=self.period_start,
            period_end=self.period_end,
            source_npi=self.source_npi,
            recipient_npis=self.recipient_npis,
            client_id=self.client_id,
            performer=self.performer,
            resource_hash=self.resource_hash,
            policy_version=policy_version,
        )


@dataclass(frozen=True)
class ConsentRequest:
    """One request a consent is evaluated against (``policy.evaluate``): whose data, for
    whom, for what, at which instant, how much of it, from which discloser, and which
    policies the discloser can comply with for it right now."""

    member_id: MemberId
    requester: Requester
    purpose: str
    at_time: datetime
    data_scope: ConsentPolicy | str
    source_npi: str
    supported_policies: frozenset[ConsentPolicy] = frozenset(ConsentPolicy)


@dataclass(frozen=True)
class Hop:
    """Where a consent decision is taken, for its audit event: the hop's name, the instant,
    the client that asked (or our own actor) and the request it answers."""

    name: str
    at: datetime
    actor: str
    request_id: str | None = None


@dataclass(frozen=True)
class DisclosureRequest:
    """The data holder's question (``service.authorize_disclosure``): may ``requester``
    receive ``member_id``'s data from us (``source_npi``) at ``at``, at ``hop``?
    ``code_sets`` and ``scope`` name the segmentation and data scope the answer shapes."""

    member_id: MemberId
    requester: Requester
    at: datetime
    source_npi: str
    supported_policies: frozenset[ConsentPolicy]
    hop: str
    request_id: str | None
    code_sets: str
    scope: str | None = None


@dataclass(frozen=True)
class OutboundRequest:
    """The requester's question before an outbound call (``service.authorize_request``):
    does the opt-in ``consent_id`` still let ``us`` ask ``partner_npi`` for the data?"""

    consent_id: str | None
    partner_npi: str
    us: Requester
    at: datetime
    hop: str
    request_id: str | None = None


@dataclass(frozen=True)
class RevokeConsent:
    """Revoke ``consent_id`` from ``at`` on, by ``by`` (``service.revoke_consent``)."""

    consent_id: str
    at: datetime
    by: str
    request_id: str | None


@dataclass(frozen=True)
class AcceptPresentedConsent:
    """A Consent presented at ``$member-match`` for the matched ``member_id``, to decide and,
    if it permits, keep as ``consent_id`` (``service.accept_presented_consent``)."""

    presented: PresentedConsent
    consent_id: ConsentId
    member_id: MemberId
    requester: Requester
    at: datetime
    source_npi: str
    supported_policies: frozenset[ConsentPolicy]
    request_id: str | None
    detail: dict[str, Any] | None = None
