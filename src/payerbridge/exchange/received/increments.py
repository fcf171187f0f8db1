"""Incremental exchanges (pure): what an answer asked ``_since`` an instant held that
changed after it.

An exchange with ``since`` asks the old payer only for what changed after that instant
(``$everything``'s ``_since``). The old payer still sends the member's Patient, changed
or not, and a transmitter Provenance of its own made for this answer: that Provenance is
not news. An answer with nothing last updated after ``since`` found nothing new, and the
exchange says so (``nothing-new``) rather than looking like an empty success. Judged by
``meta.lastUpdated``, this holds for a record read by searches too (which carry no
``_since``: the whole record comes, and is upserted by source identity), and for an
onboarding's bulk export asked ``_since`` (``$davinci-data-export``), judged per member.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from payerbridge.timestamps import instant_of

__all__ = ["changed_among", "changed_since"]

_NOT_NEWS = frozenset({"Provenance", "OperationOutcome"})


def changed_since(bundle: Any, since: datetime) -> dict[str, int]:
    """Per type, the resources of ``bundle`` last updated after ``since`` (a resource
    without ``meta.lastUpdated`` counts as changed: we cannot tell), Provenance and
    outcomes left out."""
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    return changed_among(
        (entry.get("resource") if isinstance(entry, dict) else None for entry in entries or ()),
        since,
    )


def changed_among(resources: Iterable[Any], since: datetime) -> dict[str, int]:
    """As ``changed_since``, of resources as a bulk export's files carry them."""
    changed: dict[str, int] = {}
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        kind = resource.get("resourceType")
        if not isinstance(kind, str) or kind in _NOT_NEWS:
            continue
        stamp = (resource.get("meta") or {}).get("lastUpdated")
        updated = instant_of(stamp) if isinstance(stamp, str) else None
        if updated is None or updated > since:
            changed[kind] = changed.get(kind, 0) + 1
    return changed
