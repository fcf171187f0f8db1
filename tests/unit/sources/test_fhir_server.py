"""FhirServerSource against the quirky FHIR server, in-process: records by type with
paging and ``since``, one token reused, a slow, down or failing server answered within
the budget with gaps, and the roster by ``$export`` and by search."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, RSAKey

from payerbridge.backends.ports import LiveSource, RecordsQuery, SourceAnswer
from payerbridge.errors import PartnerUnavailable
from payerbridge.sources import FhirServerSettings, FhirServerSource
from payerbridge_tools.sandbox.asgi import RefusingTransport, SyncASGITransport
from payerbridge_tools.sandbox.fhir_source import FhirSourceOptions, build_app
from payerbridge_tools.sandbox.fhir_source_state import FhirSourceState
from payerbridge_tools.sandbox.quirks import SERVED_TYPES

BASE = "http://fhir.test/fhir"
TYPES = frozenset(SERVED_TYPES)
MEMBERS = 10


def _key_pair(kind: str = "EC") -> tuple[dict[str, Any], dict[str, Any]]:
    key = (
        ECKey.generate_key("P-384", private=True)
        if kind == "EC"
        else RSAKey.generate_key(2048, private=True)
    )
    kid = key.thumbprint()
    private = {**key.as_dict(private=True), "kid": kid}
    return private, {"keys": [{**key.as_dict(private=False), "kid": kid}]}


@dataclass
class Server:
    app: Any
    state: FhirSourceState
    private_key: dict[str, Any]

    def control(self, **body: Any) -> None:
        problem = self.state.control.set(body)
        assert problem is None, problem

    def source(self, **overrides: Any) -> FhirServerSource:
        values: dict[str, Any] = {
            "id": "clinical",
            "base_url": BASE,
            "types": TYPES,
            "client_id": "platform",
            "private_key": self.private_key,
            "page_size": 5,
            **overrides,
        }
        transport = overrides.pop("transport", None) or SyncASGITransport(self.app)
        values.pop("transport", None)
        return FhirServerSource(FhirServerSettings(**values), transport=transport)

    def member_records(self, member: str) -> set[tuple[str, str]]:
        return set(self.state.by_member[member])

    def busiest_member(self) -> str:
        return max(self.state.by_member, key=lambda m: len(self.state.by_member[m]))


def _server(key: str = "EC", **options: Any) -> Server:
    private, public = _key_pair(key)
    app = build_app(
        FhirSourceOptions(
            members=MEMBERS, clients={"platform": public}, export_retry_after=0, **options
        )
    )
    state = _state_of(app)
    return Server(app, state, private)


def _state_of(app: Any) -> FhirSourceState:
    """The app's state, found through its control route's closure."""
    for route in app.routes:
        if getattr(route, "path", "") == "/_control":
            for cell in route.endpoint.__closure__ or ():
                if isinstance(cell.cell_contents, FhirSourceState):
                    return cell.cell_contents
    raise AssertionError("no state")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    found = _server()
    yield found


@pytest.fixture(autouse=True)
def normal(server: Server) -> None:
    server.control(mode="normal")


def _keys(answer: SourceAnswer) -> set[tuple[str, str]]:
    return {(r["resourceType"], r["id"]) for r in answer.records}


def test_a_member_is_read_whole_page_by_page(server: Server) -> None:
    member = server.busiest_member()
    before = dict(server.state.requests)
    answer = server.source().records(RecordsQuery(member), budget_seconds=10)
    assert answer.complete, answer.gaps
    assert _keys(answer) == server.member_records(member)
    observations = server.state.requests["Observation search"] - before.get("Observation search", 0)
    assert observations > 1  # more than one page followed


def test_only_the_types_asked_for_and_held_are_read(server: Server) -> None:
    member = server.busiest_member()
    query = RecordsQuery(member, types=frozenset({"Condition", "ExplanationOfBenefit"}))
    source: LiveSource = server.source()  # the port, as the platform holds it
    assert source.id == "clinical" and source.types == TYPES
    answer = source.records(query, budget_seconds=10)
    assert answer.complete
    assert {r["resourceType"] for r in answer.records} == {"Condition"}


def test_a_member_the_server_does_not_hold_is_an_empty_complete_answer(server: Server) -> None:
    answer = server.source().records(RecordsQuery("nobody"), budget_seconds=10)
    assert answer.complete and answer.records == []


@pytest.mark.parametrize("last_updated", [True, False], ids=["_lastUpdated", "filtered-here"])
def test_since_gives_what_changed_after_it(last_updated: bool) -> None:
    server = _server(last_updated=last_updated)
    member = server.busiest_member()
    since = datetime(2024, 1, 1, tzinfo=UTC)
    answer = server.source().records(RecordsQuery(member, since=since), budget_seconds=10)
    assert answer.complete, answer.gaps
    expected = {
        key
        for key in server.member_records(member)
        if datetime.fromisoformat(server.state.resources[key]["meta"]["lastUpdated"]) > since
    }
    assert _keys(answer) == expected and expected


def test_one_token_serves_every_call_until_the_server_refuses_it(server: Server) -> None:
    source = server.source()
    member = server.busiest_member()
    issued = server.state.tokens_issued
    for _ in range(3):
        assert source.records(RecordsQuery(member), budget_seconds=10).complete
    assert server.state.tokens_issued == issued + 1
    server.state.tokens.clear()  # revoked (or expired early) at the server
    assert source.records(RecordsQuery(member), budget_seconds=10).complete
    assert server.state.tokens_issued == issued + 2


def test_an_rsa_key_signs_rs384() -> None:
    server = _server(key="RSA")
    answer = server.source().records(RecordsQuery(server.busiest_member()), budget_seconds=10)
    assert answer.complete, answer.gaps


def test_a_slow_type_is_a_timeout_gap_within_the_budget_and_the_rest_is_given(
    server: Server,
) -> None:
    member = server.busiest_member()
    source = server.source()
    assert source.records(RecordsQuery(member), budget_seconds=10).complete  # token, metadata
    server.control(mode="slow", delay=5, types=["Observation"])
    started = time.monotonic()
    answer = source.records(RecordsQuery(member), budget_seconds=0.5)
    assert time.monotonic() - started < 3  # the budget and a loose margin, never the delay
    (gap,) = answer.gaps
    assert (gap.types, gap.code, gap.retry_may_help) == (("Observation",), "source-timeout", True)
    assert _keys(answer) == {k for k in server.member_records(member) if k[0] != "Observation"}


def test_a_server_that_is_down_is_a_gap_for_every_type(server: Server) -> None:
    server.control(mode="down")
    answer = server.source().records(RecordsQuery(server.busiest_member()), budget_seconds=5)
    assert answer.records == []
    assert {t for g in answer.gaps for t in g.types} == TYPES
    assert all(g.code == "source-unavailable" and g.retry_may_help for g in answer.gaps)
    assert all(g.source == "clinical" for g in answer.gaps)


def test_a_server_that_refuses_connections_is_unavailable(server: Server) -> None:
    source = server.source(transport=RefusingTransport())
    answer = source.records(RecordsQuery("anyone"), budget_seconds=5)
    assert {t for g in answer.gaps for t in g.types} == TYPES
    assert {g.code for g in answer.gaps} == {"source-unavailable"}


def test_a_failed_second_page_keeps_the_first_and_names_the_type(server: Server) -> None:
    member = server.busiest_member()
    server.control(mode="fail-page", page=2, types=["Observation"])
    answer = server.source().records(RecordsQuery(member), budget_seconds=10)
    (gap,) = answer.gaps
    assert gap.types == ("Observation",) and gap.code == "source-unavailable"
    assert gap.text.startswith("Observation: 1 of its pages read")
    observations = [r for r in answer.records if r["resourceType"] == "Observation"]
    assert len(observations) == 5  # the first page's
    others = {k for k in server.member_records(member) if k[0] != "Observation"}
    assert others <= _keys(answer)
    assert member not in gap.text


def test_a_page_that_is_not_a_bundle_is_a_contract_error(server: Server) -> None:
    server.control(mode="bad-page", page=1, types=["Condition"])
    answer = server.source().records(RecordsQuery(server.busiest_member()), budget_seconds=10)
    (gap,) = answer.gaps
    assert (gap.types, gap.code, gap.retry_may_help) == (("Condition",), "source-error", False)


def test_a_record_added_later_is_given_when_asked_again(server: Server) -> None:
    member = server.busiest_member()
    source = server.source()
    before = source.records(RecordsQuery(member), budget_seconds=10)
    added = server.state.add(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{member}"},
            "code": {"text": "added after start"},
        },
        datetime.now(UTC),
    )
    after = source.records(RecordsQuery(member), budget_seconds=10)
    assert _keys(after) == _keys(before) | {("Condition", added["id"])}


def _patients(server: Server) -> set[str]:
    return {rid for kind, rid in server.state.resources if kind == "Patient"}


def test_the_roster_comes_from_the_bulk_export() -> None:
    server = _server(export_file_size=3)
    before = dict(server.state.requests)
    roster = list(server.source().roster())
    assert {p["id"] for p in roster} == _patients(server)
    assert server.state.requests.get("Patient search", 0) == before.get("Patient search", 0)
    assert server.state.exports == {}  # the job was deleted once read


def test_the_roster_comes_from_a_search_without_an_export() -> None:
    server = _server(export=False)
    roster = list(server.source().roster())
    assert {p["id"] for p in roster} == _patients(server)
    assert server.state.requests["Patient search"] > 1


def test_the_roster_since_gives_the_patients_changed_after_it(server: Server) -> None:
    member = server.busiest_member()
    patient = dict(server.state.resources[("Patient", member)])
    server.state.add(patient, datetime.now(UTC))
    roster = list(server.source().roster(since=datetime(2025, 6, 1, tzinfo=UTC)))
    assert [p["id"] for p in roster] == [member]


def test_the_roster_of_a_server_that_is_down_is_an_error(server: Server) -> None:
    server.control(mode="down")
    with pytest.raises(PartnerUnavailable):
        list(server.source().roster())


class _Failing(httpx.BaseTransport):
    """Pages of one type fail from a given page on, the rest as the server answers."""

    def __init__(self, app: Any, failing: dict[str, tuple[int, str]]) -> None:
        self._inner = SyncASGITransport(app)
        self._failing = failing

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        kind = request.url.path.rsplit("/", 1)[-1]
        page = int(request.url.params.get("_offset", 0)) // 5 + 1
        how = self._failing.get(kind)
        if how is not None and page >= how[0]:
            if how[1] == "refuse":
                raise httpx.ConnectError("refused", request=request)
            if how[1] == "timeout":
                raise httpx.ReadTimeout("slow", request=request)
            return httpx.Response(int(how[1]), request=request)
        return self._inner.handle_request(request)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    failing=st.dictionaries(
        st.sampled_from(sorted(TYPES - {"Patient"})),
        st.tuples(
            st.integers(1, 4), st.sampled_from(["refuse", "timeout", "429", "500", "503", "400"])
        ),
        max_size=4,
    ),
    types=st.frozensets(st.sampled_from(sorted(TYPES)), min_size=1),
)
def test_any_failing_page_never_raises_and_never_loses_a_type(
    server: Server, failing: dict[str, tuple[int, str]], types: frozenset[str]
) -> None:
    member = server.busiest_member()
    source = server.source(transport=_Failing(server.app, failing))
    answer = source.records(RecordsQuery(member, types=types), budget_seconds=10)
    missing = {t for g in answer.gaps for t in g.types}
    given = {r["resourceType"] for r in answer.records}
    held = {kind for kind, _ in server.member_records(member)}
    for kind in types:
        # Each type asked for is whole, or named in a gap: never silently short.
        whole = {k for k in server.member_records(member) if k[0] == kind} <= _keys(answer)
        assert whole or kind in missing, kind
    assert missing <= {t for t in failing if t in types}
    assert given <= held
    for gap in answer.gaps:
        assert gap.code in ("source-unavailable", "source-timeout", "source-error")
        assert gap.retry_may_help == (gap.code != "source-error")
