"""Request bodies of the non-FHIR API that the routers share with the CLI (pydantic): the
body of ``POST /exchanges``, turned into the domain ``ExchangeRequest``, and the opt-ins
of ``POST /consents``. Kept as sent, the exchange's body is read back by
``exchange.requests.request_from_document``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from payerbridge.errors import InvalidInput, Issue
from payerbridge.exchange.model import (
    ConsentGrant,
    ExchangeRequest,
)
from payerbridge.members import Address, CoverageCard, MemberDemographics
from payerbridge.timestamps import instant_of
from payerbridge.types import PartnerId

__all__ = [
    "PullScheduleCreate",
    "PullScheduleUpdate",
    "ConsentCapture",
    "ConsentIn",
    "ExchangeCreate",
    "OnboardingCreate",
    "onboarding_requests",
]

_Relationship = Literal[
    "self", "spouse", "child", "parent", "common", "injured", "other", "unknown"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AddressIn(_Strict):
    line: list[str] = Field(default_factory=list, max_length=4)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=50)
    postal_code: str | None = Field(default=None, max_length=10)


class MemberIn(_Strict):
    given: list[str] = Field(min_length=1, max_length=5)
    family: str = Field(min_length=1, max_length=100)
    birth_date: date
    gender: Literal["male", "female", "other", "unknown"]
    address: AddressIn | None = None
    phone: str | None = Field(default=None, max_length=30)


class CoverageIn(_Strict):
    member_id: str | None = Field(default=None, min_length=1, max_length=64)
    subscriber_id: str | None = Field(default=None, min_length=1, max_length=64)
    relationship: _Relationship = "self"
    start: date | None = None

    @model_validator(mode="after")
    def _has_an_id(self) -> CoverageIn:
        # HRex us-core-15: a member id or a subscriber id is on every card we send.
        if not self.member_id and not self.subscriber_id:
            raise ValueError("give member_id or subscriber_id (as printed on the card)")
        return self


class ConsentIn(_Strict):
    policy: Literal["regular", "sensitive"]
    start: date
    end: date
    source_reference: str = Field(
        min_length=3, max_length=500, description="Reference to the signed opt-in document."
    )

    @model_validator(mode="after")
    def _period_is_ordered(self) -> ConsentIn:
        if self.end < self.start:
            raise ValueError("consent end is before its start")
        return self

    def to_domain(self) -> ConsentGrant:
        return ConsentGrant(self.policy, self.start, self.end, self.source_reference)


class ConsentCapture(ConsentIn):
    """A member's opt-in captured ahead of any exchange (POST /consents)."""

    member_id: str = Field(
        min_length=1, max_length=64, description="Our member id (as on the new card)."
    )
    old_payer: str = Field(min_length=1, max_length=64, description="Registered partner id.")


class ExchangeCreate(_Strict):
    old_payer: str = Field(min_length=1, max_length=64, description="Registered partner id.")
    member: MemberIn
    old_coverage: CoverageIn
    new_coverage: CoverageIn
    consent: ConsentIn | None = Field(
        default=None, description="The member's opt-in, captured with this request."
    )
    consent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Or the id of an opt-in captured before (POST /consents).",
    )
    since: str | None = Field(
        default=None,
        max_length=40,
        description="Ask only for what changed after this FHIR instant (`_since`), e.g. "
        "the time the last successful exchange's data was received: 2027-01-01T00:00:00Z.",
    )

    @field_validator("since")
    @classmethod
    def _an_instant(cls, value: str | None) -> str | None:
        if value is not None and instant_of(value) is None:
            raise ValueError(
                "since must be a FHIR instant with a time zone, e.g. 2027-01-01T00:00:00Z"
            )
        return value

    @model_validator(mode="after")
    def _one_opt_in(self) -> ExchangeCreate:
        if (self.consent is None) == (self.consent_id is None):
            raise ValueError("give exactly one of consent (the opt-in) or consent_id")
        return self

    def to_domain(self) -> ExchangeRequest:
        member = self.member
        address = None
        if member.address is not None:
            address = Address(
                tuple(member.address.line),
                member.address.city,
                member.address.state,
                member.address.postal_code,
            )
        return ExchangeRequest(
            old_payer=PartnerId(self.old_payer),
            member=MemberDemographics(
                tuple(member.given),
                member.family,
                member.birth_date,
                member.gender,
                address,
                member.phone,
            ),
            old_coverage=_card(self.old_coverage),
            new_coverage=_card(self.new_coverage),
            consent=self.consent.to_domain() if self.consent else None,
            consent_id=self.consent_id,
            since=_since(self.since),
        )


def _since(value: str | None) -> datetime | None:
    return instant_of(value) if value is not None else None


def _card(coverage: CoverageIn) -> CoverageCard:
    return CoverageCard(
        coverage.member_id, coverage.subscriber_id, coverage.relationship, coverage.start
    )


def onboarding_requests(partner: str, members: Sequence[Any]) -> list[ExchangeRequest]:
    """The members of an onboarding (each as ``POST /exchanges`` takes a member, with its
    opt-in; ``old_payer`` is the onboarding's ``partner``, or absent) as domain requests;
    InvalidInput naming every bad member and field, by line (from 1)."""
    requests: list[ExchangeRequest] = []
    issues: list[Issue] = []
    for line, member in enumerate(members, start=1):
        if not isinstance(member, dict):
            issues.append(Issue(f"line {line}: not a JSON object", f"members[{line - 1}]"))
            continue
        if member.get("old_payer", partner) != partner:
            issues.append(
                Issue(f"line {line}: old_payer is not the onboarding's partner '{partner}'",
                      f"members[{line - 1}].old_payer")
            )  # fmt: skip
            continue
        if "since" in member:
            issues.append(
                Issue(f"line {line}: since is the onboarding's, not a member's (since of "
                      "POST /onboardings, --since of payerbridge onboard)",
                      f"members[{line - 1}].since", "not-supported")
            )  # fmt: skip
            continue
        if "consent" not in member or "consent_id" in member:
            issues.append(
                Issue(f"line {line}: consent (the member's opt-in itself) is required to "
                      "onboard; consent_id is not taken", f"members[{line - 1}].consent",
                      "required")
            )  # fmt: skip
            continue
        try:
            parsed = ExchangeCreate.model_validate({**member, "old_payer": partner})
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                issues.append(
                    Issue(f"line {line}: {where or 'member'}: {error['msg']}",
                          f"members[{line - 1}].{where}" if where else f"members[{line - 1}]")
                )  # fmt: skip
            continue
        requests.append(parsed.to_domain())
    if issues:
        raise InvalidInput("the members cannot be onboarded as they are", issues=issues[:200])
    return requests


class OnboardingCreate(_Strict):
    partner: str = Field(min_length=1, max_length=64, description="The old payer's partner id.")
    members: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=100_000,
        description="Each member as POST /exchanges takes it, without old_payer, with consent.",
    )
    since: str | None = Field(
        default=None,
        max_length=40,
        description="Ask the old payer's exports only for what changed after this FHIR "
        "instant (_since), or 'last': after what the last completed onboarding with the "
        "partner received (its received_at).",
    )


class PullScheduleCreate(_Strict):
    """Exactly one of ``request`` (the member's first request, as for POST /exchanges) or
    ``exchange`` (a successful exchange to pull again from)."""

    request: ExchangeCreate | None = None
    exchange: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    coverage_end: date | None = Field(
        default=None,
        description="The day the member's coverage at the old payer ends or ended; "
        "unset: it goes on (concurrent coverage, pulled quarterly).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> PullScheduleCreate:
        if (self.request is None) == (self.exchange is None):
            raise ValueError("give exactly one of 'request' (a first request) or 'exchange'")
        if self.request is not None and self.request.since is not None:
            raise ValueError("a first request reads the whole record: drop 'since'")
        return self


class PullScheduleUpdate(_Strict):
    """What a plan learns after scheduling: the day coverage at the old payer ends."""

    coverage_end: date
