"""What Provider Access's use cases need of the world (ADR 0059)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import date
from typing import Any, Protocol

from payerbridge.provider_access.model import Attribution, OptOutChoice
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = ["AttributionStore", "NewChoice", "OptOutStore", "ServiceRecords"]

NewChoice = OptOutChoice  # ``seq`` is the store's to give: a new choice carries 0


class ServiceRecords(Protocol):
    """The plan's own records (not what other payers sent), read in batches."""

    def providers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Its Practitioners and Organizations (``PROVIDER_TYPES``), by ``Type/id``."""
        ...

    def services(self) -> Iterator[tuple[MemberId, dict[str, Any]]]:
        """Its claims and encounters (``SERVICE_TYPES``) in a member's compartment."""
        ...

    def known_members(self, member_ids: Iterable[MemberId]) -> set[MemberId]:
        """Those of ``member_ids`` the plan holds a Patient for."""
        ...


class AttributionStore(Protocol):
    def replace_derived(self, unit: UnitOfWork, attributions: Sequence[Attribution]) -> int:
        """Every attribution derived from claims replaced by ``attributions``; how many
        there were before."""
        ...

    def replace_roster(
        self, unit: UnitOfWork, roster: str, attributions: Sequence[Attribution]
    ) -> int:
        """The roster ``roster``'s attributions replaced; how many there were before."""
        ...

    def add(self, unit: UnitOfWork, attributions: Sequence[Attribution]) -> None:
        """``attributions`` kept beside the others (a provider's attestations)."""
        ...

    def holding(
        self, provider_npi: str, day: date, *, among: Collection[MemberId] | None = None
    ) -> list[Attribution]:
        """``provider_npi``'s attributions that hold on ``day`` (``among``: of those
        members only)."""
        ...


class OptOutStore(Protocol):
    def record(self, unit: UnitOfWork, choice: NewChoice, actor: str) -> int:
        """The choice kept; its ``seq``."""
        ...

    def of_members(self, member_ids: Iterable[MemberId]) -> dict[MemberId, list[OptOutChoice]]:
        """Each member's choices (only members with any), in the order recorded."""
        ...
