"""The delivery room's ports: the deliveries and what each destination already has from
us (``DeliveryStore``), the record an exchange received (``HeldRecords``), and the plan's
FHIR server itself (``Destination``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from datetime import datetime
from typing import Any, Protocol

from payerbridge.delivery.model import DeliveryRecord, DeliveryState, DestinationAnswer
from payerbridge.transactions import UnitOfWork

__all__ = ["DeliveryStore", "Destination", "HeldRecords"]


class DeliveryStore(Protocol):
    """Deliveries and, per destination, the content hash of each resource written there.
    Each write in the caller's unit of work."""

    def open(self, unit: UnitOfWork, *, subject: str, destination_id: str, run: int) -> str:
        """The delivery of this subject's run to this destination, made ``pending`` if it
        is not there yet; its id."""
        ...

    def claim(self, unit: UnitOfWork, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        """The delivery, ``delivering`` and counted as one more attempt, if it is
        ``pending`` or ``waiting`` and due."""
        ...

    def due(self, delivery_id: str) -> datetime | None:
        """When the delivery is due; None once it has ended."""
        ...

    def overdue(self, *, before: datetime, limit: int = 1000) -> list[str]:
        """Deliveries not ended and due before ``before``: their workflow may never have
        started (its process died between the commit and the enqueue)."""
        ...

    def of_subject(self, subject: str) -> list[DeliveryRecord]:
        """The subject's deliveries, the latest run's first."""
        ...

    def written(self, destination_id: str, refs: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """Of ``refs``, those we wrote to the destination: our ref → the content hash we
        last wrote, and whether it was written by a conditional update."""
        ...

    def wrote(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        hashes: Mapping[str, str],
        conditional: Set[str],
        counts: Mapping[str, int],
    ) -> None:
        """A transaction the destination took: its resources' hashes (``conditional``:
        those written on their identifier), its counts added."""
        ...

    def wait(self, unit: UnitOfWork, delivery_id: str, *, until: datetime, error: str) -> None: ...

    def end(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        state: DeliveryState,
        answer: DestinationAnswer | None = None,
        unchanged: int = 0,
    ) -> DeliveryRecord: ...


class HeldRecords(Protocol):
    def batches(self, subject: str) -> Iterator[list[dict[str, Any]]]:
        """The resources we hold from the subject (``exchange:<id>``: as its last run
        stored them; ``onboarding:<id>``), with our ids, a few thousand at a time: those
        in no member's compartment first, then each member's compartment whole."""
        ...

    def by_refs(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        """The resources we hold by our ``Type/id``, whatever brought them."""
        ...


class Destination(Protocol):
    """A plan's FHIR server we write to."""

    @property
    def id(self) -> str: ...

    @property
    def types(self) -> frozenset[str] | None:
        """The types it takes (None: every type)."""
        ...

    def post_transaction(self, bundle: dict[str, Any]) -> DestinationAnswer:
        """Post one transaction Bundle; what the destination answered, classified."""
        ...
