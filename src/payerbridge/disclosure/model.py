"""What a paged disclosure keeps (pure): the query of a first ``$everything`` page, the
snapshot of the decision made for it and the entries its pages give (``store.disclosures``
keeps them; ``everything.py`` decides them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.consent.model import ConsentPolicy
from payerbridge.types import ClientId, MemberId

__all__ = ["EverythingQuery", "PageEntry", "Snapshot"]


@dataclass(frozen=True)
class EverythingQuery:
    types: frozenset[str] | None = None  # None: every type
    since: datetime | None = None  # last updated after this
    count: int = 1000
    until: datetime | None = None  # last updated at or before this (bulk export's _until)
    # Bulk Data's $export: the Patient too only when _type names it (PDex's operations
    # always carry exactly one Patient). Never kept in a page token: $everything is PDex's.
    exact_types: bool = False
    # Our transmitter Provenance goes with every page: only where the token that asked
    # for the first page grants Provenance (disclosure.grants). Kept in the page token; a
    # token kept without it (older) reads as False: when in doubt, left out.
    our_provenance: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "types": sorted(self.types) if self.types is not None else None,
            "since": self.since.isoformat() if self.since else None,
            "count": self.count,
            "until": self.until.isoformat() if self.until else None,
            "our_provenance": self.our_provenance,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EverythingQuery:
        types, since, until = data.get("types"), data.get("since"), data.get("until")
        return cls(
            frozenset(types) if types is not None else None,
            datetime.fromisoformat(since) if since else None,
            int(data["count"]),
            datetime.fromisoformat(until) if until else None,
            our_provenance=data.get("our_provenance") is True,
        )


@dataclass(frozen=True)
class Snapshot:
    """A first page's decision, kept so that the next links page through it."""

    id: str
    client_id: ClientId
    patient_id: MemberId
    policy: ConsentPolicy
    created_at: datetime
    expires_at: datetime
    total: int
    query: EverythingQuery
    withheld: frozenset[str]
    path: str  # what was asked, under the FHIR base: the next links page it only
    # The code sets and data scope that judged it (None: not known, its pages judge again).
    judged_by: str | None = None


@dataclass(frozen=True)
class PageEntry:
    ref: str
    mode: str  # "match": the member's own record; "include": a shared resource it reaches
    version: int | None = None  # the version judged, when the resource named it
