"""An onboarding as it is kept: the run, its members, and its chunks' progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from payerbridge.exchange.model import ExchangeRequest
from payerbridge.types import ClientId, OnboardingId, PartnerId

__all__ = [
    "Chunk",
    "FailOnboarding",
    "MemberPatient",
    "NewOnboarding",
    "Onboarding",
    "OnboardingMember",
    "OnboardingStatus",
    "ReadOnboarding",
    "Stage",
]


class OnboardingStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Stage(StrEnum):
    """Where a chunk of members is in its round trip to the old payer."""

    SUBMIT_MATCH = "submit-match"  # its $bulk-member-match is to be kicked off
    AWAIT_MATCH = "await-match"  # polled until its manifest is there
    SUBMIT_EXPORT = "submit-export"  # its MatchedMembers Group is to be exported
    AWAIT_EXPORT = "await-export"  # polled, then its files downloaded and imported
    DONE = "done"


@dataclass(frozen=True)
class Onboarding:
    id: OnboardingId
    client_id: ClientId  # who asked; the only client that sees it
    partner_id: PartnerId
    status: OnboardingStatus
    total: int
    chunks: int
    created_at: datetime
    updated_at: datetime
    error: str | None = None
    since: datetime | None = None  # an incremental run: only what changed after this
    # What its data reflects: the earliest transactionTime of its exports (the old
    # payer's clock, as ``_since`` is judged), our clock's receipt time where a manifest
    # has none; the ``since`` of the next run that carries on from this one.
    received_at: datetime | None = None


@dataclass(frozen=True)
class MemberPatient:
    """The one Patient at the plan a member's imported records were kept under, and how
    it was chosen (ADR 0054: ``plan``, ``derived-none``, ``derived-ambiguous``,
    ``derived-mismatch``), with where its sources' Patients differ: the fields, paths
    and sources, never the values (``exchange.received.merge.Difference``)."""

    patient: str  # Patient/<id>
    how: str
    differences: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"patient": self.patient, "how": self.how, "differences": list(self.differences)}


@dataclass(frozen=True)
class OnboardingMember:
    """One member: its MemberBundle as submitted (its Patient's id is ``member_id``) and
    what became of it."""

    position: int
    member_id: str  # the member's id at our plan
    consent_id: str  # its opt-in, kept as a consent record
    bundle: dict[str, Any]
    result: str | None = None  # a PdexMultiMemberMatchResultCS code once matched
    old_patient: str | None = None  # the old payer's Patient id for a matched member
    imported: int | None = None  # resources imported for it (None: not yet, or none came)
    changed: int | None = None  # of an incremental run: what its answer held that changed
    member_patient: MemberPatient | None = None  # once its records were kept


@dataclass(frozen=True)
class Chunk:
    onboarding_id: OnboardingId
    number: int
    first: int  # the position of its first member
    size: int
    stage: Stage
    status_url: str | None = None  # the old payer's status URL of the job in flight
    group_id: str | None = None  # the MatchedMembers Group to export
    due_at: datetime | None = None  # when to poll again


@dataclass(frozen=True)
class NewOnboarding:
    """A run asked for: its id, the old payer, each member's request (with the opt-in),
    by whom and under which request; ``since``: ask only what changed after it (``last``:
    after what the client's last completed run with the partner reflects)."""

    onboarding_id: OnboardingId
    partner_id: PartnerId
    requests: Sequence[ExchangeRequest]
    client_id: ClientId
    request_id: str | None
    since: datetime | Literal["last"] | None = None


@dataclass(frozen=True)
class FailOnboarding:
    """A run ended as failed, with ``error`` (no member data) as its reason."""

    onboarding_id: OnboardingId
    error: str


@dataclass(frozen=True)
class ReadOnboarding:
    """A client reads one of its own runs (the operator any run's)."""

    onboarding_id: OnboardingId
    client_id: ClientId
