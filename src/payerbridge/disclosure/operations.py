"""The disclosure operations as use cases, each ``use_case(command, uow)``:
``$everything``'s first page, a search within one member's records, and ``Patient`` by
identifier. A command holds what the request says (parsed by the edge); the unit gives
the time, the ids and where the page's audit event is recorded; the result is a
``Page`` (``disclosure.paging``) the edge renders.

``$everything`` is answered in two steps because the edge answers it once per
Idempotency-Key: the consent is decided on every call, a retry under the same key
included (``open_everything``), the page only when the call is answered anew
(``first_everything_page``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from payerbridge.backends.live import LiveAnswers
from payerbridge.backends.ports import SourceGap
from payerbridge.disclosure.everything import (
    Compartment,
    parse_everything_query,
    plan_everything,
    plan_search,
)
from payerbridge.disclosure.grants import LeftOut, grants, limit_everything, limit_patient_search
from payerbridge.disclosure.model import EverythingQuery
from payerbridge.disclosure.paging import (
    FirstPage,
    Page,
    PagingRules,
    PagingUnit,
    Reader,
    decide_consent,
    disclosure_context,
    first_page,
    release_terms,
)
from payerbridge.disclosure.reads import find_patients
from payerbridge.disclosure.search import PatientQuery, SearchQuery
from payerbridge.types import MemberId

__all__ = [
    "EverythingCommand",
    "ask_live_for_search",
    "ask_live_sources",
    "PatientSearchCommand",
    "SearchCommand",
    "everything_query",
    "find_patient_page",
    "first_everything_page",
    "first_search_page",
    "open_everything",
]


@dataclass(frozen=True)
class EverythingCommand:
    """A first ``$everything`` page asked: its query limited to what the reader's token
    grants (``everything_query``), and what that left out."""

    reader: Reader
    member: MemberId
    query: EverythingQuery
    left_out: LeftOut | None
    path: str  # under the FHIR base
    self_url: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class SearchCommand:
    """A first page of a search within one member's records."""

    reader: Reader
    query: SearchQuery
    path: str  # under the FHIR base
    self_url: str


@dataclass(frozen=True)
class PatientSearchCommand:
    """``Patient?identifier=`` (or ``_id``), answered in one page."""

    reader: Reader
    query: PatientQuery
    self_url: str


def everything_query(
    params: Sequence[tuple[str, str]], reader: Reader, rules: PagingRules
) -> tuple[EverythingQuery, LeftOut | None]:
    """The first page's query (400 naming every bad parameter), limited to the types the
    reader's token grants (403 when it grants none that ``_type`` names), and what that
    left out."""
    query = parse_everything_query(params, max_count=rules.page_size)
    return limit_everything(query, reader.granted, rules.held_types, reader.context)


def open_everything(command: EverythingCommand, uow: PagingUnit) -> FirstPage:
    """The member's consent decided for the reader now (audited): a consent revoked since
    an earlier answer stops the data here, even one replayed under its Idempotency-Key."""
    policy = decide_consent(command.reader, command.member, "everything", uow)
    return FirstPage(
        command.reader,
        command.member,
        command.path,
        command.self_url,
        command.query,
        policy,
        left_out=command.left_out,
        idempotency_key=command.idempotency_key,
    )


def ask_live_sources(asked: FirstPage, uow: PagingUnit) -> LiveAnswers | None:
    """The member's records asked of the live sources that hold them, for the types the
    first page was asked for, once its consent permits: outside any unit of work, since
    the calls may take a source's whole budget. None when no live source holds them."""
    answers = uow.live.ask(asked.member, asked.query.types, asked.query.since)
    return answers if answers.asked else None


def first_everything_page(
    asked: FirstPage, uow: PagingUnit, live: LiveAnswers | None = None
) -> Page:
    """Decide what the member's ``$everything`` gives (streaming the compartment once,
    within the payer-to-payer window, with what the live sources gave kept first) and
    answer its first page, naming what a live source could not give; NotFound when the
    member has no Patient."""
    if live is not None:
        asked = replace(asked, gaps=_keep_live(live, uow))
    members = uow.members
    plan = plan_everything(
        Compartment(asked.member, members.stream_compartment(asked.member)),
        members,
        release_terms(asked.reader, asked.policy, uow),
        asked.query,
    )
    return first_page(asked, plan, uow)


def ask_live_for_search(command: SearchCommand, uow: PagingUnit) -> LiveAnswers | None:
    """The searched type asked of the live sources that hold the member, only once the
    member's consent permits the reader (decided and audited in a unit of its own, as a
    refusal's is); outside any unit while the sources answer. None when no live source
    holds the member."""
    reader, query = command.reader, command.query
    if reader.only_member is not None and query.patient_id != reader.only_member:
        return None
    if not uow.live.holds(query.patient_id):
        return None
    with uow:  # the decision's instant; nothing is written in it
        decide_consent(reader, query.patient_id, "search", uow)
    return uow.live.ask(query.patient_id, frozenset({query.resource_type}), None)


def first_search_page(
    command: SearchCommand, uow: PagingUnit, live: LiveAnswers | None = None
) -> Page | None:
    """A search decided by the member's consent on the whole compartment (with what the
    live sources gave kept first), paged like ``$everything``; None when a member-scoped
    token asks about another member: it sees nobody else, an empty search rather than a
    refusal."""
    reader, query = command.reader, command.query
    if reader.only_member is not None and query.patient_id != reader.only_member:
        return None
    gaps = _keep_live(live, uow) if live is not None else ()
    policy = decide_consent(reader, query.patient_id, "search", uow)
    members = uow.members
    plan = plan_search(
        query,
        members.stream_compartment(query.patient_id),
        members,
        release_terms(reader, policy, uow),
        reader.granted,
    )
    asked = FirstPage(
        reader,
        query.patient_id,
        command.path,
        command.self_url,
        EverythingQuery(count=query.count, our_provenance=grants(reader.granted, "Provenance")),
        policy,
        left_out=LeftOut(plan.left_out, reader.context) if plan and plan.left_out else None,
        gaps=gaps,
    )
    return first_page(asked, plan, uow)


def _keep_live(live: LiveAnswers, uow: PagingUnit) -> tuple[SourceGap, ...]:
    """What the live sources gave, kept in a unit of its own, committed before the
    decision streams the compartment (a unit holding the write lock would stall the
    snapshot's); the gaps they left."""
    with uow.transactions.begin() as keeping:
        return tuple(uow.live.keep(keeping, live))


def find_patient_page(command: PatientSearchCommand, uow: PagingUnit) -> Page:
    """Patients by identifier (the UMB from $member-match) or id, with our transmitter
    Provenance and, asked with ``_revinclude=Provenance:target``, their stored one; a
    member whose consent does not permit the reader is simply not found."""
    reader = command.reader
    query, with_provenance, left_out = limit_patient_search(
        command.query, reader.granted, reader.context
    )
    found = find_patients(disclosure_context(reader, uow.now, uow), query)
    return Page(
        found,
        total=sum(1 for mode, _ in found if mode == "match"),
        self_url=command.self_url,
        next_url=None,
        with_provenance=with_provenance,
        left_out=left_out,
        now=uow.now,
        provenance_id=uow.new_id(),
        outcome_id=uow.new_id(),
    )
