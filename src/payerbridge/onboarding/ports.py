"""What an onboarding needs: its rows, and the old payer's Bulk Data endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from payerbridge.onboarding.model import (
    Chunk,
    MemberPatient,
    Onboarding,
    OnboardingMember,
    OnboardingStatus,
    Stage,
)
from payerbridge.routing.model import Partner
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, OnboardingId, PartnerId

__all__ = ["BulkPartner", "BulkStatus", "OnboardingStore"]


@dataclass(frozen=True)
class BulkStatus:
    """A Bulk Data status answer: the manifest once done, else when to ask again."""

    manifest: dict[str, Any] | None
    retry_after: float | None = None
    progress: str | None = None


class BulkPartner(Protocol):
    def kick_off(
        self, partner: Partner, path: str, body: dict[str, Any], *, idempotency_key: str
    ) -> str:
        """POST an asynchronous request under the partner's FHIR base (``path``); the
        status URL it answers with."""
        ...

    def poll(self, partner: Partner, status_url: str, *, idempotency_key: str) -> BulkStatus: ...

    def download(self, partner: Partner, url: str, *, idempotency_key: str) -> bytes: ...

    def refresh_credentials(self, partner: Partner) -> None:
        """Forget the partner's access token after it refused it (the next call asks anew)."""
        ...


class OnboardingStore(Protocol):
    def create(self, unit: UnitOfWork, onboarding: Onboarding, chunks: Sequence[Chunk]) -> None:
        """The run and its chunks: a unit's first statements (they are Core's)."""
        ...

    def add_members(
        self, unit: UnitOfWork, onboarding_id: OnboardingId, members: Sequence[OnboardingMember]
    ) -> None: ...

    def get(self, onboarding_id: OnboardingId) -> Onboarding | None: ...

    def last_received_at(self, client_id: ClientId, partner_id: PartnerId) -> datetime | None:
        """What the client's last completed onboarding with the partner that received
        data reflects (its ``received_at``); None if there is none."""
        ...

    def members(
        self, onboarding_id: OnboardingId, *, first: int = 0, size: int | None = None
    ) -> list[OnboardingMember]:
        """In position order."""
        ...

    def next_chunk(self, onboarding_id: OnboardingId) -> Chunk | None:
        """The first chunk not done."""
        ...

    def chunks(self, onboarding_id: OnboardingId) -> list[Chunk]: ...

    def move_chunk(
        self,
        unit: UnitOfWork,
        chunk: Chunk,
        to: Stage,
        *,
        at: datetime,
        status_url: str | None = None,
        group_id: str | None = None,
        due_at: datetime | None = None,
    ) -> bool:
        """From the chunk's stage to ``to``; False (nothing written) if it moved meanwhile."""
        ...

    def record_results(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        results: Mapping[int, tuple[str, str | None]],
    ) -> None:
        """Each member's result and the old payer's Patient id, by position."""
        ...

    def record_imported(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        counts: Mapping[int, int],
        *,
        changed: Mapping[int, int] | None = None,
    ) -> None:
        """Each member's resources imported and, of an incremental run, how many of
        them changed since, by position."""
        ...

    def record_member_patients(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        chosen: Mapping[int, MemberPatient],
    ) -> None:
        """The one Patient each member's records were kept under, by position."""
        ...

    def record_received(self, unit: UnitOfWork, onboarding_id: OnboardingId, at: datetime) -> None:
        """``at`` (what a chunk's export reflects) as the run's ``received_at`` when it is
        the earliest so far."""
        ...

    def finish(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        status: OnboardingStatus,
        *,
        at: datetime,
        error: str | None = None,
    ) -> bool:
        """Running to ``status``; False if it had already ended."""
        ...
