"""Paged answers: a first page's decision kept as a snapshot, and the pages read back
through it by ``next`` links, each released to the caller as it asks and audited.

``$everything`` and a search within one member's records page alike
(``disclosure.operations`` decides their first pages). A page is a ``Page``, the data of
one searchset Bundle; the edge renders it (``everything_page``) with its outcome entry.
The snapshot commits in a unit of its own before its first page is read back (reads see
the last commit); each page's audit event is recorded on the unit the use case is given,
committed by its caller with whatever goes with the answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.ports import AuditLog
from payerbridge.backends.ports import SourceGap
from payerbridge.consent.model import ConsentPolicy, Requester
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.disclosure.everything import (
    EverythingPlan,
    ReleaseTerms,
    grants,
    judged_by,
    read_by,
    released_on_page,
)
from payerbridge.disclosure.grants import Granted, LeftOut, on_page
from payerbridge.disclosure.model import EverythingQuery, Snapshot
from payerbridge.disclosure.ports import DisclosureSnapshots, LiveRecords, MemberData
from payerbridge.disclosure.reads import DisclosureContext, authorize_member
from payerbridge.disclosure.scope import PAYER_TO_PAYER, DataScope
from payerbridge.disclosure.window import ExchangeWindow
from payerbridge.errors import Conflict, InvalidInput, Issue, NotFound
from payerbridge.transactions import Transactions, UnitOfWork
from payerbridge.types import MemberId

__all__ = [
    "AFTER",
    "PAGE_TOKEN",
    "FirstPage",
    "NextPageCommand",
    "Page",
    "PagingUnit",
    "PagingRules",
    "Reader",
    "decide_consent",
    "disclosure_context",
    "first_page",
    "is_next_page",
    "next_page",
    "release_terms",
    "window_at",
]

Resource = dict[str, Any]
Params = Sequence[tuple[str, str]]

# The parameters of a next link: the snapshot's id and the position the page starts after.
PAGE_TOKEN, AFTER = "_page_token", "_after"


@dataclass(frozen=True)
class Reader:
    """Who asks, as the edge authenticated them: the requester the consent names, the
    types their token grants (None: every type), the member a member-scoped token is
    limited to, and the request's correlation id for the audit trail."""

    requester: Requester
    granted: Granted
    only_member: MemberId | None = None
    request_id: str | None = None

    @property
    def context(self) -> str:
        """The context of the scopes the caller would ask for more with."""
        return "patient" if self.only_member is not None else "system"


@dataclass(frozen=True)
class PagingRules:
    fhir_base: str  # the next links are built on it
    source_npi: str  # us, the discloser a consent names
    page_size: int  # the most entries a page holds (the largest _count)
    snapshot_lifetime: timedelta  # how long a first page's next links work
    payer_to_payer_years: int  # the service-date window (disclosure.window)
    segmentation: SegmentationPolicy  # what a regular consent withholds
    held_types: frozenset[str]  # the types this server holds ($everything's possible ones)
    scope: DataScope = PAYER_TO_PAYER  # what the rule lets leave at all (disclosure.scope)


class PagingUnit(UnitOfWork, Protocol):
    """What paging takes (ADR 0051): a unit of work (the disclosure room's,
    ``disclosure.unit``) that carries the stores and the rules. A use case runs in its
    transaction (``with uow:``); what must commit first (the snapshot, a consent decision's
    audit event, what live sources gave) commits in a transaction of its own."""

    @property
    def members(self) -> MemberData: ...

    @property
    def live(self) -> LiveRecords:  # the live sources, asked at the first page
        ...

    @property
    def consents(self) -> ConsentStore: ...

    @property
    def audit(self) -> AuditLog:
        """Consent decisions, each in a unit of its own: a refusal's event commits before
        the refusal is raised (as a read's does)."""
        ...

    @property
    def snapshots(self) -> DisclosureSnapshots: ...

    @property
    def transactions(self) -> Transactions:
        """Where the snapshot commits before its first page is read back."""
        ...

    @property
    def rules(self) -> PagingRules: ...

    def __enter__(self) -> Self:
        """Begin the unit's transaction (``with uow:``)."""
        ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True)
class Page:
    """One searchset page as it goes, for the edge to render (``everything_page``)."""

    entries: list[tuple[str, Resource]]  # (search mode, resource as released)
    total: int
    self_url: str
    next_url: str | None
    with_provenance: bool  # our transmitter Provenance goes (the token grants it)
    left_out: LeftOut | None  # said in an outcome entry (id ``outcome_id``) when set
    now: datetime
    provenance_id: str
    outcome_id: str
    # What live sources could not give (the first page says so; later pages read the
    # snapshot the first page decided).
    gaps: tuple[SourceGap, ...] = ()
    # The elements the data scope removed from what this page carries (``Type.element``).
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class NextPageCommand:
    """A page after the first, asked with its ``next`` link on ``path``."""

    reader: Reader
    path: str  # under the FHIR base, as the route was asked
    params: tuple[tuple[str, str], ...]


def is_next_page(params: Params) -> bool:
    return any(name == PAGE_TOKEN for name, _ in params)


def decide_consent(reader: Reader, member: MemberId, hop: str, uow: PagingUnit) -> ConsentPolicy:
    """The member's consent for the reader at ``uow.now`` (audited through
    ``uow.audit``); DisclosureDenied or NotFound when it does not permit."""
    return authorize_member(disclosure_context(reader, uow.now, uow), member, hop)


@dataclass(frozen=True)
class FirstPage:
    """What a first page was asked with and decided under: the operations' commands
    (``disclosure.operations``) come down to this."""

    reader: Reader
    member: MemberId
    path: str  # under the FHIR base: the next links page it only
    self_url: str
    query: EverythingQuery  # kept in the snapshot: the page size, our Provenance
    policy: ConsentPolicy
    left_out: LeftOut | None = None  # types the reader's token left out of the decision
    idempotency_key: str | None = None
    gaps: tuple[SourceGap, ...] = ()  # what live sources could not give


def first_page(asked: FirstPage, plan: EverythingPlan | None, uow: PagingUnit) -> Page:
    """Keep ``plan`` as a snapshot and answer its first page, audited on ``uow`` with
    what the first page decided; the plan is None when the member has no Patient."""
    if plan is None:
        raise NotFound(f"Patient/{asked.member} does not exist")
    now = uow.now
    terms = release_terms(asked.reader, asked.policy, uow)
    snapshot = Snapshot(
        id=uow.new_id(),
        client_id=asked.reader.requester.client_id,
        patient_id=asked.member,
        policy=asked.policy,
        created_at=now,
        expires_at=now + uow.rules.snapshot_lifetime,
        total=plan.total,
        query=asked.query,
        withheld=plan.withheld,
        path=asked.path,
        judged_by=judged_by(terms.segmentation, terms.scope),
    )
    with uow.transactions.begin() as saving:  # committed: its pages are read back
        uow.snapshots.save(saving, snapshot, plan.entries)
    reader, left_out = asked.reader, asked.left_out
    page, sent = _page(reader, snapshot, _PageAt(0, asked.self_url, left_out), uow)
    first: dict[str, Any] = {
        "withheld": plan.withheld_count,
        "outside_window": plan.outside_window,
        "outside_scope": dict(sorted(plan.outside_scope.items())),
        "idempotency_key": asked.idempotency_key,
    }
    if asked.left_out is not None:
        first["types_not_granted"] = sorted(asked.left_out.types)
    if asked.gaps:
        first["gaps"] = [
            {"source": g.source, "types": list(g.types), "code": g.code} for g in asked.gaps
        ]
    uow.record(_page_event(asked.reader, snapshot, sent, terms.scope.label, first))
    return replace(page, gaps=asked.gaps)


def next_page(command: NextPageCommand, uow: PagingUnit) -> Page:
    """A page after the first, as its ``next`` link names it: only on the path, and to
    the client, that asked for the first; the consent decided again, and the page
    audited on ``uow``."""
    params = command.params
    given = dict(params)
    if (
        sorted(name for name, _ in params) != sorted((AFTER, PAGE_TOKEN))
        or not given[AFTER].isdigit()
    ):
        raise InvalidInput(
            "a next page is asked with its link as given: _page_token and _after only",
            issues=[Issue("follow the next link unchanged", PAGE_TOKEN, "invalid")],
        )
    snapshot = uow.snapshots.get(given[PAGE_TOKEN][:36])
    if (
        snapshot is None
        or snapshot.client_id != command.reader.requester.client_id
        or snapshot.path != command.path
        or snapshot.expires_at < uow.now
    ):
        raise NotFound(
            "these pages do not exist or have expired; ask again from the first page",
            issues=[Issue("the page token is unknown or expired", PAGE_TOKEN, "not-found")],
        )
    hop = "everything" if _is_everything(snapshot) else "search"
    policy = decide_consent(command.reader, snapshot.patient_id, hop, uow)
    if policy is not snapshot.policy:
        raise Conflict(
            "the member's consent changed since the first page; ask again from the first page",
            issues=[Issue("the consent policy changed", PAGE_TOKEN, "conflict")],
        )
    after = int(given[AFTER])
    self_url = _page_url(uow.rules, snapshot, after)
    page, sent = _page(command.reader, snapshot, _PageAt(after, self_url), uow)
    scope = release_terms(command.reader, snapshot.policy, uow).scope
    uow.record(_page_event(command.reader, snapshot, sent, scope.label))
    return page


def release_terms(
    reader: Reader, policy: ConsentPolicy, uow: PagingUnit, *, windowed: bool = True
) -> ReleaseTerms:
    """What ``reader``'s answer goes under: for another payer the consent's ``policy``, the
    rule's scope and (``windowed``) the payer-to-payer window; for the plan's own
    organization its whole record, labelled (ADR 0052)."""
    rules = uow.rules
    window = window_at(uow.now, rules) if windowed else None
    terms = ReleaseTerms(policy, rules.segmentation, rules.scope, window)
    return read_by(terms, reader.requester, rules.source_npi)


def window_at(now: datetime, rules: PagingRules) -> ExchangeWindow:
    """The payer-to-payer window of an answer asked now (disclosure.window)."""
    return ExchangeWindow.at(now, years=rules.payer_to_payer_years)


def disclosure_context(reader: Reader, at: datetime, uow: PagingUnit) -> DisclosureContext:
    """What the reads' consent checks go through, for ``reader`` at ``at``."""
    return DisclosureContext(
        members=uow.members,
        consents=uow.consents,
        audit=uow.audit,
        requester=reader.requester,
        source_npi=uow.rules.source_npi,
        at=at,
        request_id=reader.request_id,
        only_member=reader.only_member,
        segmentation=uow.rules.segmentation,
        scope=uow.rules.scope,
    )


@dataclass(frozen=True)
class _PageAt:
    """Which page of a snapshot is asked: the entries after ``after``, at ``self_url``;
    ``left_out``: the types the first page's token left out of the decision."""

    after: int
    self_url: str
    left_out: LeftOut | None = None


@dataclass(frozen=True)
class _Sent:
    """What a page sent, for its audit event: when, how many entries after which, and the
    elements the data scope removed from them."""

    now: datetime
    after: int
    entries: int
    removed: Counter[str]


def _page(reader: Reader, snapshot: Snapshot, at: _PageAt, uow: PagingUnit) -> tuple[Page, _Sent]:
    """One page of the snapshot, as released now to this reader, and what it sent (how
    many entries, what the data scope removed from them): what its token (the one
    presented with this page) does not grant is left out too, and named."""
    after, left_out = at.after, at.left_out
    count = snapshot.query.count
    rows = uow.snapshots.page(snapshot.id, after=after, count=count + 1)
    more, rows = len(rows) > count, rows[:count]
    terms = release_terms(reader, snapshot.policy, uow, windowed=False)
    # Those still at the version the decision judged, by what judges now, stand as judged.
    as_judged = (
        {_ref(resource) for _, _, resource, same in rows if same and resource is not None}
        if snapshot.judged_by == judged_by(terms.segmentation, terms.scope)
        else frozenset()
    )
    allowed, denied = on_page(
        ((mode, resource) for _, mode, resource, _ in rows),
        reader.granted,
        everything=_is_everything(snapshot),
    )
    removed: Counter[str] = Counter()
    released = list(
        released_on_page(allowed, terms, snapshot.withheld, removed=removed, as_judged=as_judged)
    )
    with_provenance = snapshot.query.our_provenance and grants(reader.granted, "Provenance")
    if snapshot.query.our_provenance and not with_provenance:
        denied |= {"Provenance"}
    if denied:  # a page asked with a token that grants less than the first page's did
        narrower = LeftOut(frozenset(denied), reader.context)
        left_out = narrower if left_out is None else left_out | narrower
    page = Page(
        released,
        total=snapshot.total,
        self_url=at.self_url,
        next_url=_page_url(uow.rules, snapshot, rows[-1][0]) if more else None,
        with_provenance=with_provenance,
        left_out=left_out,
        now=uow.now,
        provenance_id=uow.new_id(),
        outcome_id=uow.new_id(),
        removed=tuple(sorted(removed)),
    )
    return page, _Sent(uow.now, after, len(released), removed)


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _is_everything(snapshot: Snapshot) -> bool:
    return snapshot.path.endswith("/$everything")


def _page_url(rules: PagingRules, snapshot: Snapshot, after: int) -> str:
    return f"{rules.fhir_base}{snapshot.path}?{PAGE_TOKEN}={snapshot.id}&{AFTER}={after}"


def _page_event(
    reader: Reader,
    snapshot: Snapshot,
    sent: _Sent,
    scope: str,
    first: dict[str, Any] | None = None,
) -> AuditEvent:
    removed = sent.removed
    detail: dict[str, Any] = {
        "entries": sent.entries,
        "policy": snapshot.policy.value,
        "pages": snapshot.id,
        "path": snapshot.path,
        "after": sent.after,
        "scope": scope,  # the data scope this page was shaped by
        **(first or {}),  # what the first page decided, and its Idempotency-Key
    }
    if removed:  # elements the data scope removed from this page, by name: how often
        detail["elements_removed"] = dict(sorted(removed.items()))
    return AuditEvent(
        at=sent.now,
        actor=reader.requester.client_id,
        action="patient.everything" if _is_everything(snapshot) else "patient.search",
        entity_type="Patient",
        entity_id=snapshot.patient_id,
        outcome="success",
        request_id=reader.request_id,
        detail=detail,
    )
