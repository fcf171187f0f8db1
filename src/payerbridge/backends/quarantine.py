"""The quarantine: resources a source produced that failed a profile they claim (ADR 0030).

What fails its profile is never sent and never silently dropped: it is held here with
the reasons (``ProfileIssue``s of ``payerbridge.fhir.profiles``, as ``HeldIssue``), for
operators to list (``GET /quarantine``, ``payerbridge quarantine list|show``) and fix at
the source or in the mapping. ``quarantine()`` holds them in the caller's unit of work
and records one audit event per resource held, with ids and the rules broken, never the
resource's values.

Nothing is released from the quarantine: a fixed source or mapping produces the resource
again, checked again. (A release would send what failed its profile; a dismissal has no
consumer yet.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.backends.model import QuarantinedResource, QuarantineId, SourceId, ToHold
from payerbridge.transactions import UnitOfWork

__all__ = ["Quarantine", "quarantine"]


class Quarantine(Protocol):
    def hold(self, unit: UnitOfWork, items: Sequence[ToHold]) -> list[QuarantinedResource]:
        """Keep ``items`` in ``unit``'s transaction, stamped with ``unit.now``."""
        ...

    def list(
        self, *, source: SourceId | None = None, after: int | None = None, limit: int = 50
    ) -> list[QuarantinedResource]:
        """Held resources in the order held, after the one of ``seq`` ``after``; without
        their bodies."""
        ...

    def get(self, quarantine_id: QuarantineId) -> QuarantinedResource:
        """One held resource with its body; NotFound when there is none."""
        ...

    def count(self, *, source: SourceId | None = None) -> int: ...


def quarantine(
    unit: UnitOfWork, store: Quarantine, items: Sequence[ToHold], *, actor: str
) -> list[QuarantinedResource]:
    """Hold ``items`` and audit each hold (ids and the rules broken; no values)."""
    if not items:
        return []
    held = store.hold(unit, items)
    unit.record(
        *(
            AuditEvent(
                at=unit.now,
                actor=actor,
                action="resource.quarantine",
                entity_type="QuarantinedResource",
                entity_id=entry.id,
                outcome="held",
                detail={
                    "source": entry.source_id,
                    "mapping": entry.mapping_id,
                    "mapping_version": entry.mapping_version,
                    "resource": f"{entry.resource_type}/{entry.resource_id or ''}",
                    "profiles": list(entry.profiles),
                    "rules": sorted({issue.rule for issue in entry.issues}),
                    "paths": sorted({issue.path for issue in entry.issues})[:20],
                },
            )
            for entry in held
        )
    )
    return held
