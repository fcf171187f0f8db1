"""Who may go to a provider now (ADR 0059), as every hop decides it: a Group read, an
export's kick-off and each member the export reaches."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.provider_access.model import Attribution, members_for_provider
from payerbridge.provider_access.ports import AttributionStore, OptOutStore
from payerbridge.types import MemberId

__all__ = ["ProviderAccessReads", "ProviderMembers"]


@dataclass(frozen=True)
class ProviderAccessReads:
    """The stores a decision reads, and the plan's calendar its days are on."""

    attributions: AttributionStore
    opt_outs: OptOutStore
    calendar: BusinessCalendar

    def decide(
        self, provider_npi: str, at: datetime, *, among: Collection[MemberId] | None = None
    ) -> ProviderMembers:
        """The provider's members on ``at``'s day (``among``: of those members only, as an
        export's chunk decides them) and those of them who may go."""
        day = self.calendar.local_day(at)
        attributions = self.attributions.holding(provider_npi, day, among=among)
        choices = self.opt_outs.of_members({a.member_id for a in attributions})
        members = members_for_provider(attributions, choices, provider_npi, day=day, at=at)
        return ProviderMembers(provider_npi, day, tuple(attributions), tuple(members))


@dataclass(frozen=True)
class ProviderMembers:
    """One provider's attributed members on ``day``, and those of them who may go."""

    provider_npi: str
    day: date
    attributions: tuple[Attribution, ...]
    members: tuple[MemberId, ...]

    @property
    def opted_out(self) -> int:
        return len({a.member_id for a in self.attributions}) - len(self.members)
