"""The paged disclosure use cases on fakes: ``$everything`` and a search decided at the
first page, paged through their snapshot, each page's event recorded on the unit it was
given; next links refused to anyone but their client, on another path, changed or late."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payerbridge.backends.ports import SourceGap
from payerbridge.consent.model import (
    ConsentId,
    ConsentPolicy,
    ConsentRecord,
    ConsentRole,
    Requester,
    StoredConsent,
)
from payerbridge.consent.segmentation import DEFAULT_SEGMENTATION
from payerbridge.disclosure.model import EverythingQuery
from payerbridge.disclosure.operations import (
    EverythingCommand,
    PatientSearchCommand,
    SearchCommand,
    ask_live_sources,
    everything_query,
    find_patient_page,
    first_everything_page,
    first_search_page,
    open_everything,
)
from payerbridge.disclosure.paging import (
    NextPageCommand,
    Page,
    PagingRules,
    Reader,
    is_next_page,
    next_page,
)
from payerbridge.disclosure.search import parse_patient_search, parse_search
from payerbridge.errors import Conflict, DisclosureDenied, InvalidInput, NotFound
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.transactions import RoomUnit
from payerbridge.types import ClientId, MemberId
from tests.fakes import (
    FakeClock,
    FakeLiveSources,
    InMemoryAuditLog,
    InMemoryConsentStore,
    InMemoryDisclosureSnapshots,
    InMemoryMemberData,
    InMemoryTransactions,
)

US, THEM = "1234567893", "1245319599"
BASE = "https://us.example/fhir"
P1 = MemberId("p1")
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
EVERYTHING = f"/Patient/{P1}/$everything"


@dataclass
class _PagingUnit(RoomUnit):
    """The disclosure room's unit (ADR 0051) as paging takes it, on the fakes."""

    members: InMemoryMemberData
    live: FakeLiveSources
    consents: InMemoryConsentStore
    audit: InMemoryAuditLog
    snapshots: InMemoryDisclosureSnapshots
    transactions: InMemoryTransactions
    rules: PagingRules


class World:
    def __init__(self) -> None:
        self.audit = InMemoryAuditLog()
        self.clock = FakeClock(NOW)
        self.members = InMemoryMemberData()
        self.consents = InMemoryConsentStore()
        self.snapshots = InMemoryDisclosureSnapshots(self.members)
        # The snapshots are not attached: a fake unit's rollback would put back what a
        # unit of their own committed inside it, which a database never does.
        self.transactions = InMemoryTransactions(self.audit, self.consents, clock=self.clock)
        self.live = FakeLiveSources(self.members)
        self.uow = _PagingUnit(
            members=self.members,
            live=self.live,
            consents=self.consents,
            audit=self.audit,
            snapshots=self.snapshots,
            transactions=self.transactions,
            rules=PagingRules(
                fhir_base=BASE,
                source_npi=US,
                page_size=1000,
                snapshot_lifetime=timedelta(minutes=10),
                payer_to_payer_years=5,
                segmentation=DEFAULT_SEGMENTATION,
                held_types=SUPPORTED_TYPES,
            ),
        )


def _patient(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:umb", "value": f"umb-{pid}"}],
    }


def _coverage(cid: str, pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "beneficiary": {"reference": f"Patient/{pid}"},
    }


def _permit(world: World, member: MemberId, client: str = "them") -> None:
    record = ConsentRecord(
        consent_id=ConsentId(f"c-{member}"),
        member_id=member,
        policy=ConsentPolicy.SENSITIVE,
        period_start=NOW - timedelta(days=30),
        period_end=NOW + timedelta(days=300),
        source_npi=US,
        recipient_npis=(THEM,),
        client_id=ClientId(client),
        performer=f"Patient/{member}",
        resource_hash=f"hash-{member}",
        policy_version="1",
    )
    stored = StoredConsent(record, ConsentRole.DISCLOSE, None, "", {}, NOW - timedelta(days=30))
    world.consents.consents[stored.consent_id] = stored


@pytest.fixture
def world() -> World:
    world = World()
    world.members.add(P1, _patient("p1"), *(_coverage(f"cov{n}", "p1") for n in range(5)))
    world.members.add(MemberId("p2"), _patient("p2"))
    _permit(world, P1)
    return world


def _reader(granted: frozenset[str] | None = None, **more: Any) -> Reader:
    return Reader(Requester(ClientId("them"), THEM), granted, request_id="req-1", **more)


def _first_everything(world: World, reader: Reader, params: list[tuple[str, str]]) -> Page:
    query, left_out = everything_query(params, reader, world.uow.rules)
    command = EverythingCommand(
        reader, P1, query, left_out, EVERYTHING, f"{BASE}{EVERYTHING}", idempotency_key="k-1"
    )
    with world.uow:
        asked = open_everything(command, world.uow)
    live = ask_live_sources(asked, world.uow)
    with world.uow:
        return first_everything_page(asked, world.uow, live)


def _next(world: World, page: Page, reader: Reader | None = None, path: str = EVERYTHING) -> Page:
    assert page.next_url is not None
    query = page.next_url.split("?", 1)[1]
    params = tuple(tuple(pair.split("=", 1)) for pair in query.split("&"))
    assert is_next_page(params)
    command = NextPageCommand(reader or _reader(), path, params)  # type: ignore[arg-type]
    with world.uow:
        return next_page(command, world.uow)


def test_everything_pages_through_its_first_decision_each_page_audited(world: World) -> None:
    first = _first_everything(world, _reader(), [("_count", "4")])
    assert [r["id"] for _, r in first.entries] == ["p1", "cov0", "cov1", "cov2"]
    assert first.total == 6 and first.self_url == f"{BASE}{EVERYTHING}"
    snapshot_id = next(iter(world.snapshots.snapshots))
    assert first.next_url == f"{BASE}{EVERYTHING}?_page_token={snapshot_id}&_after=4"
    second = _next(world, first)
    assert [r["id"] for _, r in second.entries] == ["cov3", "cov4"]
    assert second.next_url is None
    assert second.self_url == f"{BASE}{EVERYTHING}?_page_token={snapshot_id}&_after=4"
    pages = [e for e in world.audit.events if e.action == "patient.everything"]
    assert [e.detail["entries"] for e in pages] == [4, 2]
    assert [e.detail["after"] for e in pages] == [0, 4]
    assert pages[0].detail["idempotency_key"] == "k-1" and pages[0].detail["withheld"] == 0
    assert {e.actor for e in pages} == {"them"} and {e.entity_id for e in pages} == {"p1"}
    assert world.audit.actions().count("consent.decision") == 2  # decided for each page


def test_the_snapshot_commits_before_its_first_page_and_the_event_with_the_unit(
    world: World,
) -> None:
    reader = _reader()
    query, _ = everything_query([], reader, world.uow.rules)
    command = EverythingCommand(reader, P1, query, None, EVERYTHING, f"{BASE}{EVERYTHING}")
    with pytest.raises(RuntimeError), world.uow:
        first_everything_page(open_everything(command, world.uow), world.uow)
        assert world.transactions.commits == 1  # the snapshot's own unit, before its page
        raise RuntimeError("the answer was lost")
    assert len(world.snapshots.snapshots) == 1 and world.transactions.rollbacks == 1
    assert "patient.everything" not in world.audit.actions()  # rolled back with the unit


def test_a_token_without_provenance_leaves_it_out_and_says_so(world: World) -> None:
    page = _first_everything(world, _reader(frozenset({"Patient", "Coverage"})), [])
    assert not page.with_provenance
    assert page.left_out is not None and "Provenance" in page.left_out.types
    (event,) = [e for e in world.audit.events if e.action == "patient.everything"]
    assert "Provenance" in event.detail["types_not_granted"]


def test_a_next_page_goes_only_to_its_client_on_its_path_in_time(world: World) -> None:
    first = _first_everything(world, _reader(), [("_count", "2")])
    other = Reader(Requester(ClientId("someone-else"), THEM), None)
    with pytest.raises(NotFound):
        _next(world, first, other)
    with pytest.raises(NotFound):
        _next(world, first, path="/Coverage")
    with pytest.raises(InvalidInput):
        command = NextPageCommand(_reader(), EVERYTHING, (("_page_token", "x"), ("_count", "2")))
        with world.uow:
            next_page(command, world.uow)
    world.clock.advance(11 * 60)
    with pytest.raises(NotFound):
        _next(world, first)


def test_a_next_page_is_refused_once_the_consent_changes(world: World) -> None:
    first = _first_everything(world, _reader(), [("_count", "2")])
    stored = world.consents.consents[ConsentId("c-p1")]
    regular = replace(stored.record, policy=ConsentPolicy.REGULAR)
    world.consents.consents[stored.consent_id] = replace(stored, record=regular)
    with pytest.raises(Conflict):
        _next(world, first)
    world.consents.consents.clear()
    with pytest.raises(DisclosureDenied):
        _next(world, first)
    assert world.audit.actions().count("consent.decision") == 3  # the denial audited too


def test_a_search_pages_like_everything_and_a_member_token_sees_nobody_else(
    world: World,
) -> None:
    query = parse_search("Coverage", [("beneficiary", "Patient/p1"), ("_count", "3")], max_count=10)
    command = SearchCommand(_reader(), query, "/Coverage", f"{BASE}/Coverage?x")
    with world.uow:
        page = first_search_page(command, world.uow)
    assert page is not None and page.total == 5 and len(page.entries) == 3
    assert page.next_url is not None and page.next_url.startswith(f"{BASE}/Coverage?_page_token=")
    assert len(_next(world, page, path="/Coverage").entries) == 2
    assert [e.action for e in world.audit.events if e.entity_id == "p1"][-1] == "patient.search"
    before = len(world.audit.events)
    scoped = replace(command, reader=_reader(only_member=MemberId("p2")))
    with world.uow:
        assert first_search_page(scoped, world.uow) is None
    assert len(world.audit.events) == before


def test_everything_for_a_member_without_a_patient_is_not_found(world: World) -> None:
    world.members.owners = {k: v for k, v in world.members.owners.items() if k != "Patient/p1"}
    with pytest.raises(NotFound):
        _first_everything(world, _reader(), [])


def test_patients_are_found_by_identifier_only_under_a_consent(world: World) -> None:
    reader = _reader()
    for pid, found in (("p1", ["p1"]), ("p2", [])):
        query = parse_patient_search([("identifier", f"urn:umb|umb-{pid}")])
        with world.uow:
            page = find_patient_page(PatientSearchCommand(reader, query, "self"), world.uow)
        assert [r["id"] for mode, r in page.entries if mode == "match"] == found
        assert page.total == len(found) and page.next_url is None and page.now == NOW


def test_a_first_query_keeps_only_granted_types() -> None:
    world = World()
    query, left_out = everything_query(
        [("_type", "Coverage,Condition")], _reader(frozenset({"Patient", "Coverage"})),
        world.uow.rules,
    )  # fmt: skip
    assert query.types == frozenset({"Coverage"})
    assert left_out is not None and left_out.types == frozenset({"Condition", "Provenance"})
    assert isinstance(query, EverythingQuery)


def test_live_sources_are_asked_once_permitted_and_their_gaps_named_on_the_first_page(
    world: World,
) -> None:
    condition = {
        "resourceType": "Condition",
        "id": "live-1",
        "subject": {"reference": "Patient/p1"},
    }
    gap = SourceGap("clinical", ("Observation",), "source-timeout", "too slow")
    world.live.answers[P1] = ([condition], [gap])
    page = _first_everything(world, _reader(), [("_count", "3")])
    assert world.live.asked == [(P1, None)]
    assert page.gaps == (gap,)
    assert page.total == 7  # the Patient, five Coverages and the live Condition
    first, *_ = [e for e in world.audit.events if e.action == "patient.everything"]
    assert first.detail["gaps"] == [
        {"source": "clinical", "types": ["Observation"], "code": "source-timeout"}
    ]
    later = _next(world, page)
    assert later.gaps == ()  # said once, on the first page


def test_live_sources_are_not_asked_without_a_consent(world: World) -> None:
    world.live.answers[MemberId("p2")] = ([], [])
    reader = _reader()
    query, left_out = everything_query([], reader, world.uow.rules)
    path = "/Patient/p2/$everything"
    command = EverythingCommand(reader, MemberId("p2"), query, left_out, path, f"{BASE}{path}")
    with pytest.raises(DisclosureDenied), world.uow:
        open_everything(command, world.uow)
    assert world.live.asked == []


def _versioned(resource: dict[str, Any], version: int) -> dict[str, Any]:
    return {**resource, "meta": {"versionId": str(version)}}


@pytest.mark.parametrize("new_version", [True, False])
def test_a_later_page_judges_again_what_changed_since_the_decision(
    world: World, new_version: bool
) -> None:
    """A record still at the version the first page judged, by the same code sets, goes as
    judged; one changed since (a new version) is judged again: made sensitive, it stays."""
    world.members.add(P1, *(_versioned(_coverage(f"cov{n}", "p1"), 1) for n in range(5)))
    stored = world.consents.consents[ConsentId("c-p1")]
    regular = replace(stored.record, policy=ConsentPolicy.REGULAR)
    world.consents.consents[stored.consent_id] = replace(stored, record=regular)
    first = _first_everything(world, _reader(), [("_count", "2")])
    assert [r["id"] for _, r in first.entries] == ["p1", "cov0"]
    # Coverage/cov3 now says, in words, what a regular consent withholds.
    sensitive = {**_coverage("cov3", "p1"), "text": {"div": "<div>HIV disease</div>"}}
    world.members.add(P1, _versioned(sensitive, 2 if new_version else 1))
    second = _next(world, first)
    third = _next(world, second)
    sent = [r["id"] for page in (second, third) for _, r in page.entries]
    # Without a new version the store could not have changed it: what was judged stands.
    assert sent == (["cov1", "cov2", "cov4"] if new_version else ["cov1", "cov2", "cov3", "cov4"])
