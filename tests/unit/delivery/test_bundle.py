"""The transaction Bundles that carry a received record to the plan's FHIR server."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.delivery.bundle import (
    conditional_url,
    content_hash,
    member_criteria,
    plan_transactions,
    reference_to,
)
from payerbridge.fhir.codes import RECORD_ROLE, V2_0203
from payerbridge.fhir.resources import is_source_record, iter_references

TYPES = ["Patient", "Coverage", "Encounter", "Condition", "Provenance"]
_text = st.text(min_size=1, max_size=12)
MB = {"system": V2_0203, "code": "MB"}


def _split_token(query: str) -> tuple[str, str]:
    """``system|value`` as a server reads it: the one unencoded ``|``, then unescaped."""
    system, value = query.split("|")
    return _unescape(unquote(system)), _unescape(unquote(value))


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(next(chars) if char == "\\" else char)
    return "".join(out)


_demographics = st.fixed_dictionaries(
    {},
    optional={"birthDate": st.sampled_from(["2001-02-03", "2024-12-31"]), "gender": _text},
)


def _request_key(entry: dict[str, Any]) -> str:
    """How a later Bundle names what an entry wrote: its URL, or, created unless it
    exists, the search it was created on."""
    request = entry["request"]
    if request["method"] == "POST":
        return f"{request['url']}?{request['ifNoneExist']}"
    return str(request["url"])


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 25))
    refs = [(draw(st.sampled_from(TYPES)), f"r{n}") for n in range(count)]
    shared = draw(st.lists(st.tuples(_text, _text), min_size=1, max_size=4))
    resources = []
    for kind, rid in refs:
        resource: dict[str, Any] = {"resourceType": kind, "id": rid, "meta": {"v": 1}}
        if draw(st.booleans()):
            system, value = draw(st.sampled_from(shared) | st.tuples(_text, _text))
            resource["identifier"] = [{"system": system, "value": value}]
            if kind == "Patient" and draw(st.booleans()):  # a member id (typed MB)
                resource["identifier"][0]["type"] = {"coding": [{"system": V2_0203, "code": "MB"}]}
        if kind == "Patient":
            resource |= draw(_demographics)
            if draw(st.booleans()):  # an old payer's Patient, kept as a source record
                resource["meta"]["tag"] = [{"system": RECORD_ROLE, "code": "source"}]
        targets = draw(st.lists(st.sampled_from(refs), max_size=3))
        resource["about"] = [{"reference": f"{t}/{i}"} for t, i in targets]
        resource["elsewhere"] = {"reference": "Organization/not-held"}
        resources.append(resource)
    return resources


@settings(max_examples=80, deadline=None)
@given(records(), st.integers(1, 8))
def test_every_resource_once_and_every_reference_resolves(
    held: list[dict[str, Any]], max_entries: int
) -> None:
    transactions = plan_transactions(held, max_entries=max_entries)
    refs = [entry.ref for t in transactions for entry in t.entries]
    assert sorted(refs) == sorted(f"{r['resourceType']}/{r['id']}" for r in held)
    earlier: set[str] = set()  # the request URLs of entries already posted
    for transaction in transactions:
        bundle = transaction.as_bundle()
        full_urls = {entry["fullUrl"] for entry in bundle["entry"]}
        assert len(full_urls) == len(bundle["entry"])
        assert len({_request_key(entry) for entry in bundle["entry"]}) == len(full_urls)
        for entry in bundle["entry"]:
            for reference in iter_references(entry["resource"]):
                if reference.startswith("urn:uuid:"):
                    assert reference in full_urls
                elif reference != "Organization/not-held":
                    assert reference in earlier  # posted in an earlier Bundle
        earlier |= {_request_key(entry) for entry in bundle["entry"]}
        assert sum(transaction.counts.values()) == len(bundle["entry"])


@settings(max_examples=100, deadline=None)
@given(records(), st.integers(1, 8))
def test_conditional_urls_name_the_identifier_escaped(
    held: list[dict[str, Any]], max_entries: int
) -> None:
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in held}
    for transaction in plan_transactions(held, max_entries=max_entries):
        for entry in transaction.entries:
            resource = by_ref[entry.ref]
            if entry.if_none_exist is not None or resource["resourceType"] == "Patient":
                continue  # a Patient: test_no_patient_is_ever_written_over_by_an_identifier
            if "?" not in entry.url:
                assert entry.url == entry.ref and entry.resource["id"] == resource["id"]
                continue
            kind, query = entry.url.split("?identifier=")
            assert kind == resource["resourceType"] and "id" not in entry.resource
            identifier = resource["identifier"][0]
            assert _split_token(query) == (identifier["system"], identifier["value"])
            assert " " not in entry.url and "," not in query and "&" not in query


@settings(max_examples=60, deadline=None)
@given(records())
def test_what_the_destination_has_unchanged_is_not_sent_again(held: list[dict[str, Any]]) -> None:
    written = {f"{r['resourceType']}/{r['id']}": content_hash(r) for r in held}
    assert plan_transactions(held, written=written) == []
    restamped = [{**r, "meta": {"v": 2}} for r in held]
    assert plan_transactions(restamped, written=written) == []
    changed = [{**held[0], "text": "changed"}, *held[1:]]
    (only,) = plan_transactions(changed, written=written)
    assert [e.ref for e in only.entries] == [f"{held[0]['resourceType']}/{held[0]['id']}"]


def test_a_conditional_url_escapes_the_separators() -> None:
    url = conditional_url("Patient", "urn:a|b", "1,2$3\\ 4")
    assert url == "Patient?identifier=urn%3Aa%5C%7Cb|1%5C%2C2%5C%243%5C%5C%204"
    assert _split_token(url.split("=", 1)[1]) == ("urn:a|b", "1,2$3\\ 4")


def test_a_shared_identifier_falls_back_to_our_id() -> None:
    twin = [{"system": "s", "value": "v"}]
    held = [
        {"resourceType": "Coverage", "id": "a", "identifier": twin},
        {"resourceType": "Coverage", "id": "b", "identifier": twin},
    ]
    (only,) = plan_transactions(held)
    assert sorted(e.url for e in only.entries) == ["Coverage/a", "Coverage/b"]


@settings(max_examples=150, deadline=None)
@given(records(), st.integers(1, 8))
def test_no_patient_is_ever_written_over_by_an_identifier(
    held: list[dict[str, Any]], max_entries: int
) -> None:
    """A member id or an SSN may be another person's at the destination: a Patient is
    created unless the one who agrees on member id, birth date and gender is there, or
    written by our id; never updated by a search."""
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in held}
    for transaction in plan_transactions(held, max_entries=max_entries):
        for entry in transaction.as_bundle()["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] != "Patient":
                continue
            request = entry["request"]
            original = next(
                r for ref, r in by_ref.items() if _request_key(entry) in (ref, _created(r))
            )
            criteria = member_criteria(original)
            alike = [
                r for r in held if not is_source_record(r) and _created(r) == _created(original)
            ]
            if criteria is None or is_source_record(original) or len(alike) > 1:
                assert request == {"method": "PUT", "url": f"Patient/{original['id']}"}
                continue
            assert request == {"method": "POST", "url": "Patient", "ifNoneExist": criteria}
            assert "id" not in resource
            params = dict(pair.split("=", 1) for pair in criteria.split("&"))
            mb = original["identifier"][0]
            assert _split_token(params["identifier"]) == (mb["system"], mb["value"])
            assert params["birthdate"] == original["birthDate"]
            assert unquote(params.get("gender", "")) == original.get("gender", "")


def test_two_patients_one_search_would_find_go_by_our_ids() -> None:
    twin = {
        "resourceType": "Patient",
        "identifier": [{"system": "s", "value": "v", "type": {"coding": [MB]}}],
        "birthDate": "2024-12-31",
    }
    (only,) = plan_transactions([{**twin, "id": "a"}, {**twin, "id": "b"}])
    assert sorted(e.url for e in only.entries) == ["Patient/a", "Patient/b"]
    assert all(e.if_none_exist is None for e in only.entries)


def _created(patient: dict[str, Any]) -> str | None:
    criteria = member_criteria(patient)
    return None if criteria is None else f"Patient?{criteria}"


def test_a_reference_to_what_was_written_before_names_it_as_it_was_written() -> None:
    coverage = {
        "resourceType": "Coverage",
        "id": "v",
        "identifier": [{"system": "s", "value": "1"}],
    }
    member = {
        "resourceType": "Patient",
        "id": "p",
        "identifier": [{"system": "s", "value": "v", "type": {"coding": [MB]}}],
        "birthDate": "2001-02-03",
    }
    claim = {
        "resourceType": "Claim",
        "id": "c",
        "patient": {"reference": "Patient/p"},
        "insurance": [{"coverage": {"reference": "Coverage/v"}}],
    }
    elsewhere = {
        "Patient/p": reference_to(member, conditional=True),
        "Coverage/v": reference_to(coverage, conditional=True),
    }
    (only,) = plan_transactions([claim], elsewhere=elsewhere)
    written = only.entries[0].resource
    assert written["patient"] == {"reference": "Patient?identifier=s|v&birthdate=2001-02-03"}
    assert written["insurance"][0]["coverage"] == {"reference": "Coverage?identifier=s|1"}
    assert reference_to(member, conditional=False) == "Patient/p"
    # A Patient without a member id and a birth date is named by our id, as it was written.
    assert reference_to({**member, "birthDate": None}, conditional=True) == "Patient/p"
    (plain,) = plan_transactions([claim])  # not written by us before: left as it is
    assert plain.entries[0].resource["patient"] == {"reference": "Patient/p"}


@settings(max_examples=60, deadline=None)
@given(records(), st.integers(1, 8))
def test_what_names_nothing_we_hold_goes_as_a_logical_reference_to_the_old_payer(
    held: list[dict[str, Any]], max_entries: int
) -> None:
    """A server that holds references refuses one to nothing; a logical reference keeps
    where it pointed (the old payer's URL) without naming anything there."""
    sourced = [
        {
            **r,
            "meta": {
                **r["meta"],
                "source": f"https://old.example/fhir/{r['resourceType']}/{r['id']}",
            },
        }
        for r in held
    ]
    absent = frozenset({"Organization/not-held"})
    for transaction in plan_transactions(sourced, max_entries=max_entries, absent=absent):
        for entry in transaction.entries:
            assert "Organization/not-held" not in list(iter_references(entry.resource))
            assert entry.resource["elsewhere"] == {
                "type": "Organization",
                "identifier": {
                    "system": "urn:ietf:rfc:3986",
                    "value": "https://old.example/fhir/Organization/not-held",
                },
            }


def test_a_logical_reference_keeps_its_display_and_needs_the_old_payers_url() -> None:
    coverage = {
        "resourceType": "Coverage",
        "id": "c",
        "meta": {"source": "https://old.example/fhir/Coverage/7"},
        "subscriber": {"reference": "Patient/theirs", "display": "the subscriber"},
    }
    absent = frozenset({"Patient/theirs"})
    (only,) = plan_transactions([coverage], absent=absent)
    assert only.entries[0].resource["subscriber"] == {
        "display": "the subscriber",
        "type": "Patient",
        "identifier": {
            "system": "urn:ietf:rfc:3986",
            "value": "https://old.example/fhir/Patient/theirs",
        },
    }
    ours = {**coverage, "meta": {}}  # no old payer to point at: left for the server to judge
    (plain,) = plan_transactions([ours], absent=absent)
    assert plain.entries[0].resource["subscriber"]["reference"] == "Patient/theirs"
