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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NewType, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.transactions import UnitOfWork

__all__ = [
    "HeldIssue",
    "Quarantine",
    "QuarantineId",
    "QuarantinedResource",
    "SourceId",
    "ToHold",
    "quarantine",
]

QuarantineId = NewType("QuarantineId", str)
SourceId = NewType("SourceId", str)  # a configured source's id (the sources file)

_LIST_LIMIT = 1000


class _Issue(Protocol):
    """What ``payerbridge.fhir.profiles.ProfileIssue`` looks like from here."""

    @property
    def profile(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class HeldIssue:
    """Why a resource is held: one profile issue (no values, by construction)."""

    profile: str
    path: str
    rule: str
    text: str

    @classmethod
    def of(cls, issue: _Issue) -> HeldIssue:
        return cls(issue.profile, issue.path, issue.rule, issue.text)

    def to_json(self) -> dict[str, str]:
        return {"profile": self.profile, "path": self.path, "rule": self.rule, "text": self.text}


@dataclass(frozen=True)
class ToHold:
    """A resource to quarantine: what produced it and why it failed."""

    source_id: SourceId
    resource: Mapping[str, Any]
    issues: Sequence[HeldIssue]
    mapping_id: str | None = None
    mapping_version: str | None = None


@dataclass(frozen=True)
class QuarantinedResource:
    """A held resource. ``resource`` (the body) is None in lists."""

    id: QuarantineId
    seq: int  # the order held in; the cursor of a listing
    source_id: SourceId
    mapping_id: str | None
    mapping_version: str | None
    resource_type: str
    resource_id: str | None
    profiles: tuple[str, ...]  # the profiles the resource claims
    issues: tuple[HeldIssue, ...]
    held_at: datetime
    resource: dict[str, Any] | None = None


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


def claimed_profiles(resource: Mapping[str, Any]) -> tuple[str, ...]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    return tuple(str(p) for p in profiles) if isinstance(profiles, list) else ()


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


def page_limit(limit: int) -> int:
    """``limit`` within 1..1000."""
    return max(1, min(limit, _LIST_LIMIT))
