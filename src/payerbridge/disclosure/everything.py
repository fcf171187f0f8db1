"""``Patient/{id}/$everything`` in pages: the parameters, the decision made once at the first
page (which resources go, in which order, which are withheld), and each page as a Bundle.

The decision streams the member's compartment once, keeping only what segmentation needs
of each resource (its judgement, its shared references, its type and time), so no page,
and no decision, holds the member's whole history. Later pages read the snapshot: the
set and order are those decided, the consent is decided again for each page, and a
resource that has since become sensitive does not go under a ``regular`` consent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from payerbridge.consent.labels import labelled
from payerbridge.consent.model import ConsentPolicy, Requester, is_own_organization
from payerbridge.consent.segmentation import (
    DEFAULT_SEGMENTATION,
    Judgement,
    SegmentationPolicy,
    judge,
    references_at,
    sensitive_categories_of,
    withheld_among,
    without_references,
)
from payerbridge.disclosure.model import EverythingQuery, PageEntry
from payerbridge.disclosure.release import (
    SharedResources,
    foreign_withheld,
    reach_shared,
    reachable_shared,
    references_by_kind,
    shared_references,
)
from payerbridge.disclosure.scope import PAYER_TO_PAYER, WHOLE_RECORD, ReleaseScope, WholeRecord
from payerbridge.disclosure.search import SearchQuery
from payerbridge.disclosure.window import ExchangeWindow
from payerbridge.errors import InvalidInput, Issue
from payerbridge.fhir.provenance import transmitter_provenance
from payerbridge.fhir.resources import SUPPORTED_TYPES, json_of, references_of
from payerbridge.routing.model import Organization
from payerbridge.timestamps import parse_instant, utc_iso
from payerbridge.types import MemberId

__all__ = [
    "Compartment",
    "EverythingPlan",
    "ReleaseTerms",
    "RenderedPage",
    "SeenShared",
    "everything_page",
    "judged_by",
    "parse_everything_query",
    "plan_everything",
    "plan_search",
    "read_by",
    "released_now",
    "released_on_page",
]

Resource = dict[str, Any]


@dataclass(frozen=True)
class ReleaseTerms:
    """What a member's data goes under: the consent's effective ``policy`` (``regular``:
    segmented by ``segmentation``'s sensitive code sets), the data ``scope`` (what the
    rule lets leave at all) and the payer-to-payer ``window`` (None: no window)."""

    policy: ConsentPolicy
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION
    scope: ReleaseScope = PAYER_TO_PAYER
    window: ExchangeWindow | None = None

    @property
    def labels(self) -> bool:
        """Judge as a regular consent would, withhold nothing, and label what it would
        have withheld: the whole record, the plan's own organization's (ADR 0052)."""
        return isinstance(self.scope, WholeRecord) and self.scope.labels

    @property
    def judging(self) -> bool:
        """Whether each record is judged as a regular consent would judge it."""
        return self.policy is ConsentPolicy.REGULAR or self.labels


def read_by(terms: ReleaseTerms, requester: Requester, holder_npi: str) -> ReleaseTerms:
    """``terms`` (another payer's: the consent's policy, the rule's scope, the window) as
    ``requester`` reads under them: the plan's own organization (the data holder's NPI)
    reads its whole record, labelled, with no window (ADR 0052)."""
    if is_own_organization(requester, holder_npi):
        return ReleaseTerms(terms.policy, terms.segmentation, WHOLE_RECORD)
    return terms


class RenderedPage(Protocol):
    """What ``everything_page`` renders (a ``paging.Page``)."""

    @property
    def entries(self) -> list[tuple[str, Resource]]: ...  # (search mode, resource)
    @property
    def total(self) -> int: ...
    @property
    def self_url(self) -> str: ...
    @property
    def next_url(self) -> str | None: ...
    @property
    def with_provenance(self) -> bool: ...  # our transmitter Provenance goes
    @property
    def now(self) -> datetime: ...
    @property
    def provenance_id(self) -> str: ...


@dataclass(frozen=True)
class Compartment:
    """A member's Patient compartment as it is streamed (once): whose, and its records."""

    patient_id: MemberId
    records: Iterable[Resource]


# Parameters of the operation we do not implement: refused by name, never ignored.
_UNSUPPORTED = ("_typeFilter", "start", "end", "_elements", "_summary", "_include", "_revinclude")


def parse_everything_query(params: Iterable[tuple[str, str]], *, max_count: int) -> EverythingQuery:
    """The query of a first ``$everything`` call; InvalidInput (400) naming every
    parameter that is unknown, unsupported, repeated or malformed."""
    issues: list[Issue] = []
    types: set[str] | None = None
    since: datetime | None = None
    count = max_count
    seen: set[str] = set()
    for name, value in params:
        if name in seen and name != "_type":
            issues.append(Issue(f"{name} may be given once", name, "invalid"))
            continue
        seen.add(name)
        if name == "_type":
            types = types or set()
            for resource_type in (t.strip() for t in value.split(",")):
                if resource_type not in SUPPORTED_TYPES:
                    issues.append(
                        Issue(f"_type: '{resource_type[:64]}' is not a type this server holds",
                              "_type", "not-supported")
                    )  # fmt: skip
                types.add(resource_type)
        elif name == "_since":
            since = parse_instant(value)
            if since is None:
                issues.append(
                    Issue("_since must be a FHIR instant with a time zone, e.g. "
                          "2024-01-01T00:00:00Z", "_since", "invalid")
                )  # fmt: skip
        elif name == "_count":
            if not value.isdigit() or not 1 <= int(value) <= max_count:
                issues.append(
                    Issue(f"_count must be a whole number from 1 to {max_count}", "_count",
                          "invalid")
                )  # fmt: skip
            else:
                count = int(value)
        elif name.split(":")[0] in _UNSUPPORTED:
            issues.append(
                Issue(f"{name} is not supported by this server's $everything", name,
                      "not-supported")
            )  # fmt: skip
        else:
            issues.append(
                Issue(f"{name[:64]} is not a parameter of $everything (supported: _type, "
                      "_since, _count)", name[:64], "not-supported")
            )  # fmt: skip
    if issues:
        raise InvalidInput("the $everything request is not valid", issues=issues)
    return EverythingQuery(frozenset(types) if types is not None else None, since, count)


@dataclass(frozen=True)
class EverythingPlan:
    entries: list[PageEntry]  # in the order the pages give them, the Patient first
    withheld: frozenset[str]  # their references are stripped from what goes
    total: int  # the member's own records that go (Bundle.total)
    withheld_count: int  # for the audit trail only
    outside_window: int  # records the payer-to-payer window leaves out, for the audit trail
    # Types that would have gone but the caller's token does not grant (a search's
    # Provenance and includes; $everything's are decided before it is planned).
    left_out: frozenset[str] = frozenset()
    # Records the data scope leaves out, by why (disclosure.scope), for the audit trail.
    outside_scope: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the decision keeps of one resource: never the resource itself."""

    key: str
    resource_type: str
    updated: datetime | None
    shared: tuple[str, ...]
    judgement: Judgement | None
    selected: bool  # matches the search being planned, if any
    targets: tuple[str, ...]  # a Provenance's targets
    in_window: bool  # within the payer-to-payer window (a Provenance: decided by its targets)
    included: tuple[str, ...] = ()  # what the search's _include follows from it
    excluded: str | None = None  # why the data scope leaves it out, if it does
    version: int | None = None  # ``meta.versionId``, when a number


# What was seen of shared resources, by ``Type/id`` and whether it was judged, with the
# other records each refers to (``_decide``'s ``mentioned``).
SeenShared = dict[tuple[str, bool], tuple[_Seen, set[str]]]


def plan_everything(
    compartment: Compartment,
    shared: SharedResources,
    terms: ReleaseTerms,
    query: EverythingQuery,
    seen_shared: SeenShared | None = None,
) -> EverythingPlan | None:
    """Decide what goes, streaming the member's ``compartment`` once; None when the
    member has no Patient. The shared resources they reach are read level by level
    and judged with them, as ``release`` does; the terms' scope and window then leave out
    the records the rule does not let go and those outside the payer-to-payer window.
    ``seen_shared``: what was seen of the shared resources for other members planned
    with the same ``shared`` reader (a bulk chunk's), so each is judged once."""
    decision = _decide(compartment, shared, terms, seen_shared=seen_shared)
    if decision is None:
        return None
    patient_key = f"Patient/{compartment.patient_id}"

    def wanted(item: _Seen) -> bool:
        if item.key == patient_key and not query.exact_types:
            return True  # exactly one Patient, whatever _type says (PDex)
        if query.types is not None and item.resource_type not in query.types:
            return False
        if query.until is not None and (item.updated is None or item.updated > query.until):
            return False
        return query.since is None or (item.updated is not None and item.updated > query.since)

    matches = [s for s in decision.kept if wanted(s)]
    matches.sort(key=lambda s: s.key != patient_key)  # stable: the Patient first
    includes = [decision.reached[k] for k in sorted(decision.reachable)]
    return EverythingPlan(
        [PageEntry(s.key, "match", s.version) for s in matches]
        + [PageEntry(s.key, "include", s.version) for s in includes if wanted(s)],
        decision.withheld,
        len(matches),
        decision.withheld_count,
        decision.outside_window,
        outside_scope=decision.outside_scope,
    )


def plan_search(
    query: SearchQuery,
    records: Iterable[Resource],
    shared: SharedResources,
    terms: ReleaseTerms,
    granted: frozenset[str] | None = None,
) -> EverythingPlan | None:
    """Decide what a search within one member's records gives: the matching resources
    of the type among what may go (decided on the whole compartment, as for
    ``$everything``, and within ``window``), and with ``_revinclude=Provenance:target``
    the stored Provenance of those that go. What ``_include`` reaches and the Provenance
    go only where ``granted`` (the types the caller's token grants; None: all) holds
    their type; the plan names the others (``left_out``), Provenance whenever it is not
    granted, since our transmitter Provenance goes with every page."""
    decision = _decide(Compartment(query.patient_id, records), shared, terms, query)
    if decision is None:
        return None
    matches = [s for s in decision.kept if s.selected]
    found = {s.key for s in matches}
    reached = {ref for s in matches for ref in s.included if ref in decision.reachable}
    included = sorted(ref for ref in reached if grants(granted, _type_of(ref)))
    left_out = {_type_of(ref) for ref in reached} - {_type_of(ref) for ref in included}
    provenance = []
    if not grants(granted, "Provenance"):
        left_out.add("Provenance")
    elif query.revinclude_provenance:
        provenance = [
            s
            for s in decision.kept
            if s.resource_type == "Provenance" and found.intersection(s.targets)
        ]
    return EverythingPlan(
        [PageEntry(s.key, "match", s.version) for s in matches]
        + [PageEntry(key, "include", decision.reached[key].version) for key in included]
        + [PageEntry(s.key, "include", s.version) for s in provenance],
        decision.withheld,
        len(matches),
        decision.withheld_count,
        decision.outside_window,
        frozenset(left_out),
        decision.outside_scope,
    )


def grants(granted: frozenset[str] | None, resource_type: str) -> bool:
    """Whether a token granting ``granted`` (None: every type) may read ``resource_type``
    (disclosure.grants holds the rest of the rule)."""
    return granted is None or resource_type in granted


def _type_of(ref: str) -> str:
    return ref.split("/", 1)[0]


@dataclass(frozen=True)
class _Decision:
    kept: list[_Seen]  # the member's records that may go, in the order streamed
    reached: dict[str, _Seen]
    reachable: set[str]  # the shared resources that may go
    withheld: frozenset[str]
    withheld_count: int
    outside_window: int
    outside_scope: dict[str, int]


def _decide(
    compartment: Compartment,
    shared: SharedResources,
    terms: ReleaseTerms,
    search: SearchQuery | None = None,
    *,
    seen_shared: SeenShared | None = None,
) -> _Decision | None:
    judging = terms.judging
    segmentation = terms.segmentation
    # Under regular, every record referred to, to find those outside the compartment.
    mentioned: set[str] | None = set() if judging else None
    seen = [_see(r, terms, search, mentioned) for r in compartment.records]
    own = {s.key for s in seen}
    if f"Patient/{compartment.patient_id}" not in own:
        return None
    found = reach_shared((ref for s in seen for ref in s.shared), shared, own)
    memo: SeenShared = {} if seen_shared is None else seen_shared
    reached = {}
    no_window = replace(terms, window=None)  # a shared resource is judged outside any window
    for resource in found:
        key = (f"{resource['resourceType']}/{resource['id']}", judging)
        if key not in memo:
            others: set[str] = set()
            seen_it = _see(resource, no_window, mentioned=others if judging else None)
            memo[key] = (seen_it, others)
        item, others = memo[key]
        reached[item.key] = item
        if mentioned is not None:
            mentioned.update(others)
    withheld: frozenset[str] = frozenset()
    foreign: frozenset[str] = frozenset()
    if judging:
        everyone = [*seen, *reached.values()]
        judgements = [s.judgement for s in everyone if s.judgement is not None]
        withheld = withheld_among(judgements, segmentation).keys
        foreign = foreign_withheld(
            (mentioned or set()) - own - reached.keys(), shared, segmentation
        )
    labels = terms.labels  # nothing withheld: what would be is labelled on the way out
    # Withholding is decided on the whole compartment, the scope and the window after it:
    # a record the rule does not let go may still make one it does sensitive.
    judged = [s for s in seen if labels or s.key not in withheld]
    outside_scope = Counter(s.excluded for s in judged if s.excluded is not None)
    within = _within_window(judged)
    outside_window = len(judged) - sum(outside_scope.values()) - len(within)
    kept = within
    reachable = _reachable(kept, reached, frozenset() if labels else withheld)
    if labels:  # labelled too: what only withheld records reach, which would not go
        regular = _reachable([s for s in kept if s.key not in withheld], reached, withheld)
        restricted = withheld | (reachable - regular)
        return _Decision(kept, reached, reachable, restricted, 0, outside_window, outside_scope)
    dropped = sum(1 for s in reached.values() if s.key not in withheld) - len(reachable)
    # References to records outside the compartment go like those to withheld ones.
    return _Decision(
        kept,
        reached,
        reachable,
        withheld | foreign,
        len(withheld) + dropped,
        outside_window,
        dict(outside_scope),
    )


def _reachable(kept: list[_Seen], reached: dict[str, _Seen], withheld: frozenset[str]) -> set[str]:
    """The shared resources the ``kept`` records reach through what is not withheld."""
    return reachable_shared(
        (ref for s in kept for ref in s.shared),
        {
            key: item.shared
            for key, item in reached.items()
            if key not in withheld and item.excluded is None
        },
    )


def _within_window(kept: list[_Seen]) -> list[_Seen]:
    """The records the scope and the window admit; a Provenance goes unless every record
    it is about is left out (it would describe nothing that goes)."""
    outside = {s.key for s in kept if not s.in_window or s.excluded is not None}
    return [
        s
        for s in kept
        if s.in_window
        and s.excluded is None
        and (s.resource_type != "Provenance" or not s.targets or not outside.issuperset(s.targets))
    ]


def _see(
    resource: Resource,
    terms: ReleaseTerms,
    search: SearchQuery | None = None,
    mentioned: set[str] | None = None,
) -> _Seen:
    """What the decision keeps of ``resource``; the other records it refers to are
    added to ``mentioned`` when given."""
    judging = terms.judging
    window = terms.window
    updated = (resource.get("meta") or {}).get("lastUpdated")
    resource_type = str(resource["resourceType"])
    # Its JSON and references, read once (in C, not by walking it) for all that follows.
    raw = json_of(resource)
    references = references_of(resource, raw)
    judgement = judge(resource, terms.segmentation, raw, references) if judging else None
    if mentioned is None:
        shared = tuple(shared_references(resource, references))
    else:
        shared_list, others = references_by_kind(resource, references)
        shared = tuple(shared_list)
        mentioned.update(others)
    targets: tuple[str, ...] = ()
    if resource_type == "Provenance":
        # What a Provenance is about is its targets: judged already when judging.
        targets = judgement.about if judgement else tuple(references_at(resource, ("target",)))
    selected = (
        search is not None and resource_type == search.resource_type and search.matches(resource)
    )
    included = tuple(references_at(resource, search.includes)) if selected and search else ()
    return _Seen(
        f"{resource_type}/{resource['id']}",
        resource_type,
        _instant(updated) if updated else None,
        shared,
        judgement,
        selected,
        targets,
        window is None or resource_type == "Provenance" or window.admits(resource),
        included,
        terms.scope.excludes(resource),
        _version(resource),
    )


def _version(resource: Resource) -> int | None:
    version = (resource.get("meta") or {}).get("versionId")
    return int(version) if isinstance(version, str) and version.isdigit() else None


@lru_cache(maxsize=1024)
def _instant(text: str) -> datetime:
    """``meta.lastUpdated`` as a datetime: the store stamps many records alike."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def released_on_page(
    resources: Iterable[tuple[str, Resource | None]],
    terms: ReleaseTerms,
    withheld: frozenset[str],
    *,
    removed: Counter[str] | None = None,
    as_judged: AbstractSet[str] = frozenset(),
) -> Iterator[tuple[str, Resource]]:
    """The page's resources as they may go now: stripped of references to what was
    withheld, and, under ``regular``, none that has become sensitive since the decision
    (or that is gone); each shaped as ``scope`` lets it go, what that removed tallied
    in ``removed``. ``as_judged``: the ``Type/id`` of those still at the version the
    decision judged, by the code sets in force now (not judged again)."""
    for mode, resource in resources:
        released = released_now(
            resource,
            terms,
            withheld,
            removed=removed,
            judged=resource is not None
            and f"{resource['resourceType']}/{resource['id']}" in as_judged,
        )
        if released is not None:
            yield mode, released


def judged_by(segmentation: SegmentationPolicy, scope: ReleaseScope) -> str:
    """What a decision was judged and shaped by: the sensitive code sets and the data
    scope. What a decision kept (a snapshot's entries, a bulk export's lines) is judged
    again when those in force are others."""
    return f"{segmentation.code_sets.label} {scope.label}"


def released_now(
    resource: Resource | None,
    terms: ReleaseTerms,
    withheld: frozenset[str],
    *,
    removed: Counter[str] | None = None,
    judged: bool = False,
) -> Resource | None:
    """One resource of ``released_on_page``: as it may go now, or None. The scope is
    asked again: a record changed since the decision may have left it. ``judged``: the
    resource is the one the decision judged (same version, same code sets), so what it
    found stands: it is not judged again."""
    scope = terms.scope
    if resource is None or scope.excludes(resource) is not None:
        return None
    if terms.labels:  # withheld: what a regular consent would withhold
        key = f"{resource['resourceType']}/{resource['id']}"
        sensitive = key in withheld or (
            not judged and bool(sensitive_categories_of(resource, terms.segmentation))
        )
        return labelled(resource, sensitive=sensitive, segmentation=terms.segmentation)
    if terms.policy is ConsentPolicy.REGULAR:
        if not judged and sensitive_categories_of(resource, terms.segmentation):
            return None
        if withheld:  # most members: nothing to strip, and no need to look
            resource = without_references(resource, withheld)
    resource, elements = scope.shaped(resource)
    if elements and removed is not None:
        removed.update(elements)
    return resource


def everything_page(
    page: RenderedPage, *, fhir_base: str, us: Organization, outcome: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``page`` as one searchset Bundle, with our Provenance for what it carries (where the
    caller's token grants Provenance) and, last, ``outcome`` (an OperationOutcome saying
    what was left out and why) as an entry of mode ``outcome``."""
    now = page.now
    entries = [_entry(resource, fhir_base, mode) for mode, resource in page.entries]
    released = [r for _, r in page.entries if r["resourceType"] != "Provenance"]
    if released and page.with_provenance:
        transmitter = transmitter_provenance(
            page.provenance_id, released, transmitter=us, recorded=now
        )
        entries.append(_entry(transmitter, fhir_base, "include"))
    if outcome is not None:
        # No RESTful identity: a urn:uuid names it (R4 Bundle: fullUrl of such a resource).
        entries.append(
            {"fullUrl": f"urn:uuid:{outcome['id']}", "resource": outcome,
             "search": {"mode": "outcome"}}
        )  # fmt: skip
    links = [{"relation": "self", "url": page.self_url}]
    if page.next_url is not None:
        links.append({"relation": "next", "url": page.next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": utc_iso(now),
        "total": page.total,
        "link": links,
        "entry": entries,
    }


def _entry(resource: Resource, fhir_base: str, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{fhir_base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }
