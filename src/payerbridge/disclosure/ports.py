"""The disclosure room's ports: what reads, searches and ``$everything`` need from the
member store, and ``MemberStore``, the platform's member data with every room's view of
it (``store.members``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

from payerbridge.backends.live import LiveAnswers
from payerbridge.backends.ports import SourceGap
from payerbridge.disclosure.model import PageEntry, Snapshot
from payerbridge.exchange.ports import ResourceWriter
from payerbridge.identity.ports import MemberDirectory, MemberResources
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = ["DisclosureSnapshots", "LiveRecords", "MemberData", "MemberRecords", "MemberStore"]


class MemberRecords(Protocol):
    """What ``$everything`` needs from the member store."""

    def compartment(self, patient_id: MemberId) -> list[dict[str, Any]]: ...

    def stream_compartment(self, patient_id: MemberId) -> Iterator[dict[str, Any]]:
        """The compartment read in chunks, for passes that must not hold it whole."""
        ...

    def read_many(self, refs: list[str]) -> list[dict[str, Any]]: ...


class DisclosureSnapshots(Protocol):
    """Where a paged ``$everything`` keeps its first page's decision
    (``store.disclosures``)."""

    def save(self, unit: UnitOfWork, snapshot: Snapshot, entries: Iterable[PageEntry]) -> None:
        """Keep the snapshot and its entries in ``unit`` (committed before its pages are
        read)."""
        ...

    def get(self, snapshot_id: str) -> Snapshot | None: ...

    def page(
        self, snapshot_id: str, *, after: int, count: int
    ) -> list[tuple[int, str, dict[str, Any] | None, bool]]:
        """Up to ``count`` entries after position ``after``: (position, mode, the
        resource as stored now, None when it is gone; whether it is still at the version
        the snapshot judged)."""
        ...

    def purge(self, unit: UnitOfWork, *, now: datetime) -> int:
        """Drop expired snapshots in ``unit``; how many."""
        ...


class LiveRecords(Protocol):
    """The live sources (``backends.live.LiveSources``): a member's records asked at
    request time, then kept (in a unit of their own, before the first page's decision)
    with the gaps they left."""

    def holds(self, member: MemberId) -> bool:
        """Whether any live source holds the member (nothing to ask otherwise)."""
        ...

    def ask(
        self, member: MemberId, types: frozenset[str] | None, since: datetime | None
    ) -> LiveAnswers: ...

    def keep(self, unit: UnitOfWork, answers: LiveAnswers) -> list[SourceGap]: ...


class MemberData(Protocol):
    """What reads and searches need from the member store."""

    def stream_compartment(self, patient_id: MemberId) -> Iterator[dict[str, Any]]: ...

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None: ...

    def read_many(self, refs: Iterable[str]) -> list[dict[str, Any]]: ...

    def compartment(self, patient_id: MemberId) -> list[dict[str, Any]]: ...

    def resource_types(self, patient_id: MemberId) -> set[str]: ...

    def owner_of(self, resource_type: str, resource_id: str) -> MemberId | None: ...

    def find_refs_by_token(
        self, resource_type: str, param: str, value: str, system: str | None = None
    ) -> list[str]: ...


class MemberStore(MemberData, MemberDirectory, MemberResources, ResourceWriter, Protocol):
    """The member data: what each room reads and writes, and what the edges count."""

    def count(self, source_prefix: str | None = None) -> int: ...
