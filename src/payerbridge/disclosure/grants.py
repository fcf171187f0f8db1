"""Which resource types a disclosure may carry, by the caller's token (pure): SMART v1 and
v2 resource scopes honoured at type granularity (ADR 0010, amendment 2).

``granted`` is what ``security.model.granted_types`` gives for ``rs``: the types the
token lets its caller read, or None when a wildcard grants every type.

- ``$everything`` is about the member's Patient: a token that does not grant it is
  refused (403, naming the scope to ask for). Otherwise the answer holds the types the
  token grants and only those; the others (every type the operation could return, or
  those ``_type`` names) are named in an outcome entry. A ``_type`` none of whose types
  the token grants is refused.
- A search gives the matches of its type (the route asks ``<Type>.s``); the Provenance
  (``_revinclude=Provenance:target``, and our transmitter Provenance) and the resources
  ``_include`` reaches go only where the token grants their type.

When in doubt, left out: a page leaves out what the token presented with it does not
grant, even where the first page's token did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from payerbridge.disclosure.everything import grants
from payerbridge.disclosure.model import EverythingQuery
from payerbridge.disclosure.search import PatientQuery
from payerbridge.errors import Forbidden, Issue

__all__ = [
    "Granted",
    "LeftOut",
    "grants",
    "limit_everything",
    "limit_patient_search",
    "may_go",
    "on_page",
    "require_everything",
]

Granted = frozenset[str] | None  # None: a wildcard grants every type
Entry = tuple[str, dict[str, Any] | None]  # (search mode, the resource; None when gone)

_PROVENANCE = "Provenance"


def may_go(granted: Granted, mode: str, resource_type: str, *, everything: bool) -> bool:
    """Whether one entry of a page may go to a caller whose token grants ``granted``: on
    ``$everything`` every entry by its type; on a search the matches are of the searched
    type, which the route has checked, and the rest ("include") by their type."""
    if mode == "match" and not everything:
        return True
    return grants(granted, resource_type)


def on_page(
    entries: Iterable[Entry], granted: Granted, *, everything: bool
) -> tuple[list[Entry], frozenset[str]]:
    """A page's entries that may go to a caller whose token grants ``granted``, and the
    types of those that may not (``may_go``)."""
    kept: list[Entry] = []
    denied: set[str] = set()
    for mode, resource in entries:
        if resource is None or may_go(
            granted, mode, resource["resourceType"], everything=everything
        ):
            kept.append((mode, resource))
        else:
            denied.add(resource["resourceType"])
    return kept, frozenset(denied)


@dataclass(frozen=True)
class LeftOut:
    """Types an answer left out because the caller's token does not grant them."""

    types: frozenset[str]
    context: str = "system"  # the scopes to ask for: "system", or "patient" (member-scoped)

    def __or__(self, other: LeftOut) -> LeftOut:
        return LeftOut(self.types | other.types, self.context)

    def issue(self) -> Issue:
        names = ", ".join(sorted(self.types))
        example = f"{self.context}/{min(self.types)}.rs"
        return Issue(
            f"not given, because the access token does not grant these resource types: "
            f"{names}; a token with {self.context}/*.rs, or {self.context}/<Type>.rs for "
            f"each type wanted (e.g. {example}), would",
            code="suppressed",
        )


def left_out(types: frozenset[str] | set[str], context: str) -> LeftOut | None:
    return LeftOut(frozenset(types), context) if types else None


def require_everything(granted: Granted, context: str = "system") -> None:
    """$everything is about the member's Patient, which its answer always carries (PDex:
    exactly one): a token that does not grant it is refused."""
    if grants(granted, "Patient"):
        return
    scopes = f"{context}/*.rs or {context}/Patient.rs"
    raise Forbidden(
        "the access token does not grant the Patient $everything is about",
        issues=[
            Issue(
                f"request a token with scope {scopes} (and {context}/<Type>.rs for each "
                "other type wanted)",
                "Authorization",
                "forbidden",
            )
        ],
    )


def limit_everything(
    query: EverythingQuery,
    granted: Granted,
    possible: frozenset[str],
    context: str = "system",
) -> tuple[EverythingQuery, LeftOut | None]:
    """The first ``$everything`` query limited to the types ``granted``, and what that
    left out: of the types ``_type`` names, or of every type the operation could return
    (``possible``) when it names none; Provenance too, our transmitter Provenance going
    with every page only where the token grants it. Forbidden when the token does not
    grant the Patient, or none of the types ``_type`` names."""
    require_everything(granted, context)
    if granted is None:
        return query, None
    asked = query.types if query.types is not None else possible
    kept = frozenset(asked) & granted
    if query.types is not None and not kept:
        scopes = " ".join(f"{context}/{t}.rs" for t in sorted(asked))
        raise Forbidden(
            "the access token grants none of the types _type names",
            issues=[Issue(f"request a token with scope {context}/*.rs or {scopes}", "_type",
                          "forbidden")],
        )  # fmt: skip
    transmitter = _PROVENANCE in granted
    missing = set(asked) - granted
    if not transmitter:
        missing.add(_PROVENANCE)  # our transmitter Provenance goes with every page
    limited = replace(query, types=kept, our_provenance=query.our_provenance and transmitter)
    return limited, left_out(missing, context)


def limit_patient_search(
    query: PatientQuery, granted: Granted, context: str = "system"
) -> tuple[PatientQuery, bool, LeftOut | None]:
    """``Patient?identifier=`` limited to ``granted``: (the query, whether our transmitter
    Provenance goes, what was left out). Without Provenance granted, neither the stored
    Provenance ``_revinclude`` asks for nor ours goes."""
    if grants(granted, _PROVENANCE):
        return query, True, None
    limited = replace(query, revinclude_provenance=False)
    return limited, False, left_out({_PROVENANCE}, context)
