"""Route decisions: the way to find the member and to read the data, chosen from the
partner's last capability reading, with every alternative not chosen and why."""

from __future__ import annotations

from datetime import UTC, datetime

from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.route import ROUTE_POLICY, decide_route, read_data_path

BASE = "https://old.example/fhir"
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def reading(*operations: str, hrex: str | None = "1.1.0") -> Capabilities:
    return Capabilities(AT, "4.0.1", {"hrex": hrex}, frozenset(operations))


def test_a_partner_offering_member_match_and_everything_is_asked_the_standard_way() -> None:
    route = decide_route(BASE, reading("member-match", "everything"))
    assert route.routable and (route.find_member, route.data) == ("MemberId", "$everything")
    assert [option for option, _ in route.rejected] == ["search by compartment", "bulk export"]
    shown = route.to_json()
    assert shown["capabilities_read_at"] == AT.isoformat() and shown["policy"] == ROUTE_POLICY


def test_an_hrex_1_0_0_partner_is_searched_for_the_member() -> None:
    route = decide_route(BASE, reading("member-match", "everything", hrex="1.0.0"))
    assert route.find_member == "Patient?identifier="
    assert ("MemberId", "HRex 1.0.0 answers no MemberId") in route.rejected


def test_a_partner_that_dropped_everything_has_no_route_we_can_use_and_says_why() -> None:
    route = decide_route(BASE, reading("member-match", "export"))
    assert not route.routable and route.data is None
    reasons = dict(route.rejected)
    assert "does not offer $everything" in reasons["$everything"]
    assert "does not run bulk exports yet" in reasons["bulk export"]
    assert route.why_not().startswith("$everything: the partner does not offer $everything")


def test_a_partner_without_member_match_cannot_be_asked_for_a_member() -> None:
    route = decide_route(BASE, reading("everything"))
    assert not route.routable and route.find_member is None
    assert dict(route.rejected)["$member-match"] == "the partner does not offer $member-match"


def test_a_partner_never_read_is_tried_the_standard_way_and_the_decision_says_so() -> None:
    route = decide_route(BASE, None)
    assert route.routable and route.reading == "never read"
    assert any("never read" in note for note in route.notes)


def test_the_request_shape_follows_the_partners_versions_and_says_why() -> None:
    pdex_2_0 = Capabilities(
        AT, "4.0.1", {"pdex": "2.0.0"}, frozenset({"member-match", "everything"})
    )
    route = decide_route(BASE, pdex_2_0)
    assert route.shape.hrex == "1.0.0" and route.find_member == "Patient?identifier="
    assert "the partner declares PDex 2.0.0 (HRex 1.0.0)" in " ".join(route.notes)
    assert decide_route(BASE, reading("member-match", "everything")).shape.hrex == "1.1.0"
    unknown = decide_route(BASE, reading("member-match", "everything", hrex=None))
    assert unknown.shape.hrex == "1.2.0" and unknown.to_json()["request_shape"] == "HRex 1.2.0"
    assert decide_route(BASE, None).shape.hrex == "1.2.0"


def test_a_partner_without_everything_is_read_by_its_searches_by_patient() -> None:
    searchable = frozenset({"Condition", "Encounter", "Patient"})
    reading = Capabilities(
        AT, "4.0.1", {"hrex": "1.1.0"}, frozenset({"member-match"}), searchable=searchable
    )
    route = decide_route(BASE, reading)
    assert route.routable and route.data == "search by compartment"
    assert route.search_types == ("Condition", "Encounter", "Patient")
    assert route.to_json()["search_types"] == ["Condition", "Encounter", "Patient"]
    assert "does not offer $everything" in dict(route.rejected)["$everything"]
    assert read_data_path(route.data_path) == ("search by compartment", route.search_types)
    # With $everything offered too, one call is preferred and the search says why not.
    both = decide_route(
        BASE,
        Capabilities(
            AT, "4.0.1", {}, frozenset({"member-match", "everything"}), searchable=searchable
        ),
    )
    assert both.data == "$everything" and read_data_path(both.data_path) == ("$everything", ())
    assert (
        dict(both.rejected)["search by compartment"]
        == "$everything reads the whole record in one call"
    )
    assert read_data_path(None) == ("$everything", ())  # exchanges routed before paths were kept
