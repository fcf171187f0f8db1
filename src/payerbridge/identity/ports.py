"""The identity room's ports: what matching, reviewing, merging and bulk matching need
from the stores, and ``IdentityStore``, all of them with what the edges read (the
platform's identity store). Implemented by ``store.identity`` and ``tests/fakes.py``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.identity.matching.model import MatchDecision, StoredModel
from payerbridge.identity.model import (
    IdentityLink,
    IndexChanges,
    IndexSource,
    ReviewCase,
    ReviewDecision,
    ReviewOpening,
    ReviewQuery,
    StandardRecord,
)
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, MemberId

__all__ = [
    "DecisionLedger",
    "DecisionToRecord",
    "IdentityIndex",
    "IdentityStore",
    "MatchWrites",
    "MemberIndexing",
    "MemberDirectory",
    "MemberResources",
    "MergeLedger",
    "ModelTraining",
    "ReviewQueue",
]


class ModelTraining(Protocol):
    """What training a model on the payer's own members needs from the identity store."""

    def indexed_member_ids(self) -> list[MemberId]: ...

    def records_of(
        self, member_ids: Sequence[str]
    ) -> list[tuple[MemberId, StandardRecord, list[str]]]: ...

    def save_model(self, unit: UnitOfWork, model: StoredModel, *, activate: bool = True) -> None:
        """Keep the model, trained at ``unit.now`` and active from then unless told not."""
        ...


class MemberDirectory(Protocol):
    """What merging members needs from the member store: that both Patients exist."""

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None: ...


class MemberResources(Protocol):
    """What deciding a presented consent needs from the member store."""

    def resource_types(self, patient_id: MemberId) -> set[str]: ...


@dataclass(frozen=True)
class DecisionToRecord:
    """A bulk-matching decision to store with its evidence, review case and audit event."""

    decision: MatchDecision
    client_id: ClientId
    request_key: str
    review: ReviewOpening | None  # set for a ``review`` decision: the case to open
    event: AuditEvent


class MatchWrites(Protocol):
    """The writes of one ``$member-match``, all in one transaction."""

    def note_attempt(
        self,
        *,
        client_id: ClientId,
        demographics_key: str,
        card_key: str,
        at: datetime,
        window: timedelta,
    ) -> list[datetime]:
        """Record an attempt; the last attempt time of each distinct card this client
        tried with these demographics within the window (this one included), oldest
        first."""
        ...

    def record_decision(
        self,
        decision: MatchDecision,
        *,
        client_id: ClientId,
        request_key: str,
        review: ReviewOpening | None,
        event: AuditEvent,
    ) -> None: ...

    def patient(self, member_id: MemberId) -> dict[str, Any] | None: ...

    def resource_types(self, member_id: MemberId) -> set[str]:
        """The types in the member's compartment, read in the unit: a read on another
        connection while the unit holds its own would wait for a second one, and with
        every pooled connection held by a unit doing the same, none would come."""
        ...

    def assign_identifier(
        self, patient: dict[str, Any], identifier: dict[str, Any], *, at: datetime
    ) -> None: ...

    def add_links(self, links: Sequence[IdentityLink]) -> None: ...


class IdentityIndex(Protocol):
    """What matching needs from the identity store."""

    @property
    def blocking_secret(self) -> bytes:
        """The secret that keys the blocking keys (``identity.matching.blocking``)."""
        ...

    def keyed_hash(self, *parts: str | None) -> str: ...

    def candidates(
        self, keys: Sequence[str] | frozenset[str]
    ) -> list[tuple[MemberId, StandardRecord]]: ...

    def candidates_of_many(
        self, key_sets: Sequence[frozenset[str]]
    ) -> list[list[tuple[MemberId, StandardRecord]]]:
        """``candidates`` of each set of keys, in one go."""
        ...

    def member_count(self) -> int: ...

    def active_model(self, spec_fingerprint: str) -> StoredModel | None:
        """The newest activated model trained under the spec of ``spec_fingerprint``."""
        ...

    def latest_review(self, client_id: ClientId, request_key: str) -> ReviewCase | None: ...

    def merged_into(self, member_ids: Iterable[MemberId]) -> dict[MemberId, MemberId]: ...

    def match_writes(self, unit: UnitOfWork) -> MatchWrites:
        """The writes of one ``$member-match``, in ``unit``."""
        ...


class ReviewQueue(Protocol):
    """What deciding and reopening a review case need from the identity store."""

    def review(self, review_id: str) -> ReviewCase | None: ...

    def decide_review(
        self, unit: UnitOfWork, decision: ReviewDecision, *, at: datetime
    ) -> ReviewCase | None:
        """Close the case in ``unit`` if it is open at ``decision.version``, in one conditional
        write, and return it decided (its version one more); None when it is not (of two
        deciders at once, one gets None)."""
        ...

    def reopen_review(self, unit: UnitOfWork, review_id: str, *, version: int) -> ReviewCase | None:
        """Open the decided case again in ``unit`` if it is at ``version`` (one conditional
        write), its decision cleared; None when it is not."""
        ...

    def add_links(self, unit: UnitOfWork, links: Sequence[IdentityLink]) -> None: ...

    def end_link(self, unit: UnitOfWork, link: IdentityLink, *, at: datetime) -> None:
        """End the current link of the member to ``link.system|value`` at ``at``."""
        ...


class DecisionLedger(Protocol):
    """Where bulk matching stores its decisions."""

    def record_decisions(self, unit: UnitOfWork, decisions: Sequence[DecisionToRecord]) -> None:
        """The decisions with their evidence and review cases, in ``unit``."""
        ...


class MergeLedger(Protocol):
    """What merging and splitting members needs from the identity store."""

    def merged_into(self, member_ids: Iterable[MemberId]) -> dict[MemberId, MemberId]: ...

    def change_merge(
        self,
        unit: UnitOfWork,
        *,
        member_id: MemberId,
        into: MemberId | None,
        at: datetime,
        link: IdentityLink | None,
    ) -> None:
        """Merge (``link`` given) or split (``into``: the member to split from) in
        ``unit``; NotFound when there is no such merge to split."""
        ...


class MemberIndexing(Protocol):
    """What building the identity index needs from the identity store
    (``identity.indexing``): members read back as stored, and the changes it decides
    written."""

    @property
    def blocking_secret(self) -> bytes: ...

    @property
    def index_batch(self) -> int:
        """How many members are read back at a time."""
        ...

    @property
    def index_workers(self) -> int:
        """How many processes may build entries of several chunks."""
        ...

    def stored_entries(
        self, unit: UnitOfWork, member_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        """Each of these members that is indexed: its record and its listed keys, as JSON."""
        ...

    def index_source(self, unit: UnitOfWork, member_ids: Sequence[str]) -> IndexSource:
        """Our members' own Patients among these, and every Coverage of theirs."""
        ...

    def patients(self, unit: UnitOfWork, member_ids: Sequence[str]) -> dict[str, str]:
        """The Patients of these members (subscribers), whatever their source."""
        ...

    def write_entries(self, unit: UnitOfWork, changes: IndexChanges, *, at: datetime) -> None:
        """Remove the records ``changes`` replaces and the keys it removes, and write its
        records (its keys are added by ``add_keys``)."""
        ...

    def add_keys(
        self, unit: UnitOfWork, *, listed: Sequence[str], added: Sequence[tuple[str, str]]
    ) -> None:
        """Add the keys listed on the records of the members ``listed`` (indexed for the
        first time) and the (key, member) pairs ``added``."""
        ...

    def clear_index(self, unit: UnitOfWork) -> list[str]:
        """Empty the index (and key the blind indexes anew, under the store's secret);
        the members to index again."""
        ...


class IdentityStore(
    IdentityIndex,
    ReviewQueue,
    DecisionLedger,
    MergeLedger,
    ModelTraining,
    MemberIndexing,
    Protocol,
):
    """The platform's identity store: every port above, and what the edges read and
    the operator commands change (reindexing, the graph, the review queue)."""

    def decision(self, decision_id: str) -> dict[str, Any] | None: ...

    def reviews(self, query: ReviewQuery) -> list[ReviewCase]:
        """One page of cases in the queue's order (``identity.review_queue``)."""
        ...

    def review_request(self, review_id: str) -> StandardRecord | None:
        """The request as matching read it, kept with the case (demographics: for its
        reviewer only); None for a case opened before requests were kept."""
        ...

    def links_of(self, member_id: MemberId) -> list[IdentityLink]: ...

    def members_by_identifier(
        self, value: str, system: str | None = None
    ) -> list[IdentityLink]: ...
