"""Received data reconciled by source identity, and what an answer lacks or disputes (pure).

A received resource's source identity is who we hold it for (the requesting client and
our member), the old payer (its NPI) and the resource's ``Type/id`` there. Our id for it
is derived from that identity, so the same member exchanged again with the same old
payer lands on the same rows (an upsert), and two clients, or two old payers, never
share one. The answer's end follows from what it lacked (``Gap``: a partial answer) and
what two sources said differently about the same thing (``Conflict``): ``end_state``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from payerbridge.exchange.model import ExchangeState, IdentifierKey
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.fhir.completeness import Gap

__all__ = [
    "Conflict",
    "Holder",
    "conflicts_with_held",
    "conflicts_within",
    "differing_paths",
    "end_reason",
    "end_state",
    "identifier_keys",
    "member_key_of",
    "stale_refs",
]

# Field paths of a conflict: enough to act on, never a wall of them.
_MAX_PATHS = 20
# What is ours or structure, not what a source says: left out of content comparisons.
_NOT_CONTENT = frozenset({"id", "meta", "text"})


@dataclass(frozen=True)
class Holder:
    """Whom received data is held for (the client that asked, our member) and where it
    came from (the old payer's NPI): the part of a source identity an exchange fixes."""

    client_id: str
    member_id: str
    old_payer_npi: str

    @property
    def member_key(self) -> str:
        """The client's member, hashed: what every old payer's data about the member
        shares (the member id itself is never stored beside it)."""
        return member_key_of(self.client_id, self.member_id)

    def our_id(self, old_ref: str) -> str:
        """Our id of the resource the old payer keeps as ``old_ref`` (``Type/id``)."""
        return _digest(self.client_id, self.member_id, self.old_payer_npi, old_ref)

    def receipt_id(self) -> str:
        """Our receipt Provenance's id: one per holder, updated by every answer."""
        return self.our_id("#receipt")  # '#' is in no FHIR id: no old ref gives it


def member_key_of(client_id: str, member_id: str) -> str:
    """The client's member ``member_id`` (ours, from the new card), hashed: stored with
    each exchange from its submission, and what a search by member looks for."""
    return _digest(client_id, member_id)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Conflict:
    """Two sources that disagree about the same thing: resources of one type carrying
    the same business identifier (its value hashed) with different content. Both are
    kept; ``paths`` names the fields that differ (never their values)."""

    resource_type: str
    identifier_system: str
    identifier_sha256: str
    refs: tuple[str, ...]
    sources: tuple[str, ...]
    paths: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_type": self.resource_type,
            "identifier_system": self.identifier_system,
            "identifier_sha256": self.identifier_sha256,
            "refs": list(self.refs),
            "sources": list(self.sources),
            "paths": list(self.paths),
        }


def identifier_keys(resource: Mapping[str, Any]) -> list[IdentifierKey]:
    """The business identifiers (system and value both given) of ``resource``."""
    found = resource.get("identifier")
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list):
        return []
    kind = str(resource.get("resourceType"))
    return [
        (kind, i["system"], i["value"])
        for i in found
        if isinstance(i, dict)
        and isinstance(i.get("system"), str)
        and isinstance(i.get("value"), str)
    ]


def _content(node: Any, top: bool = True) -> Any:
    """What a source says, without our ids, meta, narrative or reference targets (ids
    differ between sources by construction)."""
    if isinstance(node, dict):
        return {
            k: _content(v, False)
            for k, v in node.items()
            if k != "reference" and not (top and k in _NOT_CONTENT)
        }
    if isinstance(node, list):
        return [_content(v, False) for v in node]
    return node


def differing_paths(a: Any, b: Any) -> tuple[str, ...]:
    """The field paths (``code.coding[0].code``) where two resources' content differs,
    sorted, at most twenty; empty when they say the same."""
    paths: list[str] = []
    _diff(_content(a), _content(b), "", paths)
    return tuple(sorted(paths)[:_MAX_PATHS])


def _diff(a: Any, b: Any, at: str, paths: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key), b.get(key), f"{at}.{key}" if at else key, paths)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{at}[{n}]", paths)
    elif a != b:
        paths.append(at or "(resource)")


def _key_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def conflicts_within(
    received: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[Conflict]:
    """Conflicts inside one answer: ``received`` holds (our ref, the resource as the old
    payer sent it); two of one type with the same identifier, from different sources of
    the old payer (``meta.source``), that say different things."""
    groups: dict[IdentifierKey, list[tuple[str, Mapping[str, Any]]]] = {}
    for ref, resource in received:
        for key in identifier_keys(resource):
            groups.setdefault(key, []).append((ref, resource))
    found = []
    for key, members in groups.items():
        by_source: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for ref, resource in members:
            by_source.setdefault(_source(resource), (ref, resource))
        if len(by_source) > 1:
            conflict = _conflict(key, list(by_source.items()))
            if conflict is not None:
                found.append(conflict)
    return _unique(found)


def conflicts_with_held(
    received: Sequence[Mapping[str, Any]], held: Sequence[Mapping[str, Any]]
) -> list[Conflict]:
    """Conflicts between an answer (our resources) and what we already hold for the same
    member from other old payers (``held``, our resources too)."""
    index: dict[IdentifierKey, list[Mapping[str, Any]]] = {}
    for resource in held:
        for key in identifier_keys(resource):
            index.setdefault(key, []).append(resource)
    found = []
    for resource in received:
        for key in identifier_keys(resource):
            for other in index.get(key, []):
                pair = [(_source(resource), _ours(resource)), (_source(other), _ours(other))]
                conflict = _conflict(key, pair)
                if conflict is not None:
                    found.append(conflict)
    return _unique(found)


def _ours(resource: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    return f"{resource['resourceType']}/{resource['id']}", resource


def _source(resource: Mapping[str, Any]) -> str:
    meta = resource.get("meta")
    source = meta.get("source") if isinstance(meta, dict) else None
    return source if isinstance(source, str) else ""


def _conflict(
    key: IdentifierKey, sides: Sequence[tuple[str, tuple[str, Mapping[str, Any]]]]
) -> Conflict | None:
    """The conflict among one resource from each source, if any says differently."""
    (_, (_, first)), rest = sides[0], sides[1:]
    paths = sorted({p for _, (_, other) in rest for p in differing_paths(first, other)})
    if not paths:
        return None
    kind, system, value = key
    return Conflict(
        resource_type=kind,
        identifier_system=system,
        identifier_sha256=_key_hash(value),
        refs=tuple(sorted(ref for _, (ref, _) in sides)),
        sources=tuple(sorted(source for source, _ in sides)),
        paths=tuple(paths[:_MAX_PATHS]),
    )


def _unique(conflicts: Iterable[Conflict]) -> list[Conflict]:
    seen: dict[tuple[str, str, str, tuple[str, ...]], Conflict] = {}
    for c in conflicts:
        seen.setdefault((c.resource_type, c.identifier_system, c.identifier_sha256, c.refs), c)
    return list(seen.values())


def stale_refs(held: Iterable[str], kept: Iterable[str], *, complete: bool) -> list[str]:
    """What we hold for a holder that its old payer's newest answer no longer sends, to
    remove: only when that answer was complete (from a partial one we cannot tell a
    resource withdrawn from one a missing source would have sent)."""
    if not complete:
        return []
    keep = set(kept)
    return sorted(ref for ref in set(held) if ref not in keep)


def end_state(gaps: Sequence[Gap], conflicts: Sequence[Conflict]) -> ExchangeState:
    """How an exchange whose data was stored ends: ``conflict`` when sources disagree (a
    person must look), else ``partial`` when something is missing, else ``completed``."""
    if conflicts:
        return ExchangeState.CONFLICT
    if gaps:
        return ExchangeState.PARTIAL
    return ExchangeState.COMPLETED


def end_reason(gaps: Sequence[Gap], conflicts: Sequence[Conflict]) -> tuple[str, str] | None:
    """The reason code and text of a ``partial`` or ``conflict`` end (None: completed).
    The text names sources, types and field paths only."""
    if conflicts:
        kinds = sorted({c.resource_type for c in conflicts})
        text = (
            f"{len(conflicts)} conflict(s) between sources about {', '.join(kinds)}: both "
            "versions are kept; see completeness.conflicts"
        )
        if gaps:
            text += f"; the answer was also incomplete ({_gaps_text(gaps)})"
        return ExchangeReason.CONFLICT, text
    if gaps:
        may_help = any(g.retry_may_help for g in gaps)
        advice = "asking again may help" if may_help else "asking again will not help"
        return (
            ExchangeReason.INCOMPLETE,
            f"the answer was incomplete ({_gaps_text(gaps)}); {advice}",
        )
    return None


def _gaps_text(gaps: Sequence[Gap]) -> str:
    parts = [f"{', '.join(g.types)} from '{g.source}' ({g.code})" for g in gaps[:5]]
    more = f" and {len(gaps) - 5} more" if len(gaps) > 5 else ""
    return "; ".join(parts) + more
