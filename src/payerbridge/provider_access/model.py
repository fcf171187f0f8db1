"""Provider Access (CMS-0057-F, PDex 2.2; ADR 0059), the pure core: which members are
attributed to which provider on a day, and whether a member's opt-out keeps her data
from that provider.

A provider (by NPI) is attributed a member on a day when the plan's own claims or
encounters show it served her within the look-back before that day, or a roster the
plan loaded says so for a period that holds the day. What may go to the provider on a
day is its attributed members less those whose choices, in force that day, opt them out
of it. Every answer is for one day: attributed yesterday is not attributed today.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from payerbridge.types import MemberId

__all__ = [
    "PROVIDER_TYPES",
    "SERVICE_TYPES",
    "Attribution",
    "AttributionBasis",
    "Choice",
    "OptOutChoice",
    "OptOutReason",
    "OptOutScope",
    "ServiceFact",
    "attributed_members",
    "derive_attributions",
    "is_opted_out",
    "members_for_provider",
]


SERVICE_TYPES = ("ExplanationOfBenefit", "Encounter")  # what shows a treatment relationship
PROVIDER_TYPES = ("Practitioner", "Organization")  # what a service names a provider by


class AttributionBasis(StrEnum):
    """Why a provider is attributed a member."""

    CLAIMS = "claims"  # the plan's own claims and encounters name it as serving her
    ROSTER = "roster"  # a roster the plan loaded names it
    ATTESTATION = "attestation"  # the provider attested it ($provider-member-match)


@dataclass(frozen=True)
class ServiceFact:
    """One service the plan's own data shows: ``provider_npi`` served ``member_id`` on
    ``served_on`` (as billing or rendering provider, on the care team, or as facility)."""

    member_id: MemberId
    provider_npi: str
    served_on: date


@dataclass(frozen=True, order=True)
class Attribution:
    """``provider_npi`` is attributed ``member_id`` from ``start`` to ``end``, both days
    included."""

    provider_npi: str
    member_id: MemberId
    start: date
    end: date
    basis: AttributionBasis
    roster: str = ""  # the roster's name, for a roster's attribution

    def holds_on(self, day: date) -> bool:
        return self.start <= day <= self.end


def derive_attributions(facts: Iterable[ServiceFact], *, look_back_days: int) -> list[Attribution]:
    """The attributions the services show: each service attributes its member to its
    provider from the day of service until ``look_back_days`` after it; overlapping
    spans of one provider and member are one attribution. Sorted."""
    if look_back_days < 0:
        raise ValueError("the look-back is a number of days, 0 or more")
    days: dict[tuple[str, MemberId], set[date]] = defaultdict(set)
    for fact in facts:
        days[(fact.provider_npi, fact.member_id)].add(fact.served_on)
    span = timedelta(days=look_back_days)
    found: list[Attribution] = []
    for (npi, member), served in days.items():
        ordered = sorted(served)
        start, end = ordered[0], ordered[0] + span
        for day in ordered[1:]:
            if day > end + timedelta(days=1):
                found.append(Attribution(npi, member, start, end, AttributionBasis.CLAIMS))
                start = day
            end = max(end, day + span)
        found.append(Attribution(npi, member, start, end, AttributionBasis.CLAIMS))
    return sorted(found)


def attributed_members(
    attributions: Iterable[Attribution], provider_npi: str, day: date
) -> set[MemberId]:
    """The members attributed to ``provider_npi`` on ``day``, by claims or by roster."""
    return {a.member_id for a in attributions if a.provider_npi == provider_npi and a.holds_on(day)}


class Choice(StrEnum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"  # back in: ends an earlier opt-out of the same reach


class OptOutScope(StrEnum):
    """PDex 2.2's opt-out scopes (``opt-out-scope``). Only ``provider-specific`` names
    the providers it reaches; every other scope is judged as wide as ``global``: which
    providers fall in a category or purpose is not ours to guess, so none of them get
    her data (fail closed)."""

    GLOBAL = "global"
    PROVIDER_SPECIFIC = "provider-specific"
    PURPOSE_SPECIFIC = "purpose-specific"
    PAYER_SPECIFIC = "payer-specific"
    PROVIDER_CATEGORY = "provider-category"


class OptOutReason(StrEnum):
    """PDex 2.2's opt-out reasons (``opt-out-reason``)."""

    PRIVACY_CONCERN = "privacy-concern"
    DATA_SECURITY = "data-security"
    UNKNOWN_USE = "unknown-use"
    PROVIDER_RELATIONSHIP = "provider-relationship"
    MEMBER_CHOICE = "member-choice"
    OTHER = "other"


@dataclass(frozen=True)
class OptOutChoice:
    """A member's choice about Provider Access, in force from ``effective``.
    ``provider_npi`` is the provider a ``provider-specific`` choice names (None for any
    other scope). ``seq`` orders choices recorded for the same instant."""

    member_id: MemberId
    choice: Choice
    scope: OptOutScope
    effective: datetime
    seq: int
    provider_npi: str | None = None
    reason: OptOutReason | None = None

    def __post_init__(self) -> None:
        if (self.scope is OptOutScope.PROVIDER_SPECIFIC) != (self.provider_npi is not None):
            raise ValueError("a provider-specific choice names one provider; no other does")


def is_opted_out(choices: Sequence[OptOutChoice], provider_npi: str, at: datetime) -> bool:
    """Whether the member's choices in force at ``at`` keep her data from
    ``provider_npi``. Replayed in order: an opt-out of any scope but
    ``provider-specific`` reaches every provider; a wide opt-in ends every opt-out; a
    provider's opt-in ends that provider's own opt-out and not a wide one."""
    wide_out = False
    out_of: set[str] = set()
    for choice in sorted(choices, key=lambda c: (c.effective, c.seq)):
        if choice.effective > at:
            break
        specific = choice.scope is OptOutScope.PROVIDER_SPECIFIC
        if choice.choice is Choice.OPT_OUT:
            if specific:
                out_of.add(str(choice.provider_npi))
            else:
                wide_out = True
        elif specific:
            out_of.discard(str(choice.provider_npi))
        else:
            wide_out, out_of = False, set()
    return wide_out or provider_npi in out_of


def members_for_provider(
    attributions: Iterable[Attribution],
    choices: Mapping[MemberId, Sequence[OptOutChoice]],
    provider_npi: str,
    *,
    day: date,
    at: datetime,
) -> list[MemberId]:
    """The members whose data may go to ``provider_npi`` at ``at`` (``day`` on the
    plan's calendar): attributed to it that day and not opted out of it then. Sorted."""
    attributed = attributed_members(attributions, provider_npi, day)
    return sorted(m for m in attributed if not is_opted_out(choices.get(m, ()), provider_npi, at))
