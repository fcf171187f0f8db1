"""The transaction Bundles that carry a received record to the plan's FHIR server."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.delivery.bundle import (
    conditional_url,
    content_hash,
    plan_transactions,
)
from payerbridge.fhir.resources import iter_references

TYPES = ["Patient", "Coverage", "Encounter", "Condition", "Provenance"]
_text = st.text(min_size=1, max_size=12)


def _split_token(query: str) -> tuple[str, str]:
    """``system|value`` as a server reads it: the one unencoded ``|``, then unescaped."""
    system, value = query.split("|")
    return _unescape(unquote(system)), _unescape(unquote(value))


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(next(chars) if char == "\\" else char)
    return "".join(out)


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
        assert len({entry["request"]["url"] for entry in bundle["entry"]}) == len(full_urls)
        for entry in bundle["entry"]:
            for reference in iter_references(entry["resource"]):
                if reference.startswith("urn:uuid:"):
                    assert reference in full_urls
                elif reference != "Organization/not-held":
                    assert reference in earlier  # posted in an earlier Bundle
        earlier |= {entry["request"]["url"] for entry in bundle["entry"]}
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


def test_a_reference_to_what_was_written_before_names_it_as_it_was_written() -> None:
    from payerbridge.delivery.bundle import reference_to

    patient = {"resourceType": "Patient", "id": "p", "identifier": [{"system": "s", "value": "v"}]}
    claim = {"resourceType": "Claim", "id": "c", "patient": {"reference": "Patient/p"}}
    elsewhere = {"Patient/p": reference_to(patient, conditional=True)}
    (only,) = plan_transactions([claim], elsewhere=elsewhere)
    assert only.entries[0].resource["patient"] == {"reference": "Patient?identifier=s|v"}
    assert reference_to(patient, conditional=False) == "Patient/p"
    (plain,) = plan_transactions([claim])  # not written by us before: left as it is
    assert plain.entries[0].resource["patient"] == {"reference": "Patient/p"}
