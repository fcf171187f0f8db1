"""What a disclosure may carry by the caller's token: SMART v1 and v2 resource scopes at
type granularity. ``$everything`` holds the types the token grants (the Patient among
them) and names the rest; a search's Provenance and includes go only where granted."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.everything import (
    Compartment,
    ReleaseTerms,
    plan_everything,
    plan_search,
)
from payerbridge.disclosure.grants import (
    Granted,
    LeftOut,
    limit_everything,
    limit_patient_search,
    may_go,
)
from payerbridge.disclosure.model import EverythingQuery
from payerbridge.disclosure.search import parse_patient_search, parse_search
from payerbridge.errors import Forbidden
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.security.model import MEMBER_MATCH_SCOPE, Principal, covers, granted_types
from payerbridge.types import ClientId, MemberId
from tests.builders import a_member_reaching_sensitive_shared_data

DATA = a_member_reaching_sensitive_shared_data()
OWN = ("Patient", "Coverage", "MedicationRequest", "ExplanationOfBenefit", "Encounter",
       "Provenance")  # fmt: skip
RECORDS = [r for r in DATA.values() if r["resourceType"] in OWN]
TYPES = sorted(SUPPORTED_TYPES)


class Store:
    def read_many(self, refs: list[str]) -> list[dict[str, Any]]:
        return [DATA[ref] for ref in refs if ref in DATA]


def principal(*scopes: str, patient: str | None = None) -> Principal:
    member = MemberId(patient) if patient else None
    return Principal(ClientId("c"), "1234567893", frozenset(scopes), member)


def everything(granted: Granted, types: frozenset[str] | None = None) -> set[str]:
    """The types of what the plan of ``$everything`` limited to ``granted`` holds."""
    query, _ = limit_everything(EverythingQuery(types=types), granted, SUPPORTED_TYPES)
    plan = plan_everything(
        Compartment(MemberId("p1"), RECORDS), Store(), ReleaseTerms(ConsentPolicy.SENSITIVE), query
    )
    assert plan is not None
    return {entry.ref.split("/")[0] for entry in plan.entries}


# -- the rule, by example


@pytest.mark.parametrize(
    "scopes",
    [("system/Patient.rs", "system/Coverage.rs"), ("system/Patient.read", "system/Coverage.read")],
)
def test_v1_and_v2_type_scopes_give_exactly_their_types_and_name_the_rest(
    scopes: tuple[str, ...],
) -> None:
    granted = granted_types(principal(*scopes))
    query, left_out = limit_everything(EverythingQuery(), granted, SUPPORTED_TYPES)
    assert query.types == {"Patient", "Coverage"} and not query.our_provenance
    assert left_out is not None
    assert left_out.types == SUPPORTED_TYPES - {"Patient", "Coverage"}
    issue = left_out.issue()
    assert issue.code == "suppressed"
    assert "Provenance" in issue.text and "system/*.rs" in issue.text
    assert everything(granted) == {"Patient", "Coverage"}


def test_a_token_without_the_patient_is_refused_naming_the_scope_to_ask_for() -> None:
    for scopes in [("system/Organization.rs",), (MEMBER_MATCH_SCOPE,), ("system/Patient.s",)]:
        granted = granted_types(principal(*scopes))
        with pytest.raises(Forbidden) as refused:
            limit_everything(EverythingQuery(), granted, SUPPORTED_TYPES)
        assert "system/Patient.rs" in refused.value.issues[0].text


def test_a_type_not_granted_is_left_out_and_named_unless_none_is_granted() -> None:
    granted = frozenset({"Patient", "Coverage", "Provenance"})
    query, left_out = limit_everything(
        EverythingQuery(types=frozenset({"Coverage", "Encounter"})), granted, SUPPORTED_TYPES
    )
    assert query.types == {"Coverage"} and query.our_provenance
    assert left_out == LeftOut(frozenset({"Encounter"}))
    with pytest.raises(Forbidden) as refused:
        limit_everything(EverythingQuery(types=frozenset({"Encounter"})), granted, SUPPORTED_TYPES)
    assert "system/Encounter.rs" in refused.value.issues[0].text


def test_a_wildcard_and_a_member_scoped_token_answer_as_before() -> None:
    for granted in (
        granted_types(principal("system/*.rs")),
        granted_types(principal("patient/*.rs", patient="p1")),
        granted_types(principal("system/*.read")),
    ):
        query, left_out = limit_everything(EverythingQuery(), granted, SUPPORTED_TYPES)
        assert query == EverythingQuery() and left_out is None
    scoped = granted_types(principal("patient/Patient.rs", patient="p1"))
    _, left_out = limit_everything(EverythingQuery(), scoped, SUPPORTED_TYPES, "patient")
    assert left_out is not None and "patient/*.rs" in left_out.issue().text


def test_a_search_leaves_out_provenance_and_includes_its_token_does_not_grant() -> None:
    query = parse_search(
        "MedicationRequest",
        [("patient", "p1"), ("_revinclude", "Provenance:target"),
         ("_include", "MedicationRequest:medication")],
        max_count=100,
    )  # fmt: skip

    def planned(granted: Granted) -> tuple[set[str], frozenset[str]]:
        plan = plan_search(
            query, RECORDS, Store(), ReleaseTerms(ConsentPolicy.SENSITIVE), granted=granted
        )
        assert plan is not None
        return {e.ref for e in plan.entries if e.mode == "include"}, plan.left_out

    everything_granted = planned(None)
    assert everything_granted == (
        {"Medication/arv", "Medication/amlodipine", "Provenance/p1-arv-order-prov"},
        frozenset(),
    )
    assert planned(frozenset({"MedicationRequest"})) == (
        set(),
        {"Medication", "Provenance"},
    )
    assert planned(frozenset({"MedicationRequest", "Provenance"})) == (
        {"Provenance/p1-arv-order-prov"},
        {"Medication"},
    )


def test_a_patient_search_gives_provenance_only_where_granted() -> None:
    query = parse_patient_search([("identifier", "S1"), ("_revinclude", "Provenance:target")])
    limited, ours, left_out = limit_patient_search(query, frozenset({"Patient"}))
    assert not limited.revinclude_provenance and not ours
    assert left_out == LeftOut(frozenset({"Provenance"}))
    assert limit_patient_search(query, None) == (query, True, None)


def test_later_pages_keep_our_provenance_only_as_the_first_decided() -> None:
    query = EverythingQuery(types=frozenset({"Patient"}), our_provenance=False)
    assert EverythingQuery.from_json(query.to_json()) == query
    older = {k: v for k, v in EverythingQuery().to_json().items() if k != "our_provenance"}
    assert not EverythingQuery.from_json(older).our_provenance  # when in doubt, left out
    assert may_go(frozenset({"Coverage"}), "match", "Coverage", everything=True)
    assert not may_go(frozenset({"Coverage"}), "match", "Patient", everything=True)
    assert may_go(frozenset(), "match", "Coverage", everything=False)  # the route checked
    assert not may_go(frozenset({"Coverage"}), "include", "Provenance", everything=False)


# -- for any token


RESOURCE_SCOPES = st.builds(
    lambda context, resource_type, access: f"{context}/{resource_type}.{access}",
    st.sampled_from(["system", "patient"]),
    st.sampled_from(["*", *TYPES, "Basic"]),
    st.sampled_from(["read", "write", "*", "rs", "r", "s", "cruds", "rsd", "c", "cud"]),
)
SCOPES = st.lists(
    st.one_of(RESOURCE_SCOPES, st.sampled_from([MEMBER_MATCH_SCOPE, "payerbridge/operator"])),
    max_size=6,
)


def oracle(scopes: list[str], member_scoped: bool) -> set[str]:
    """The types a token grants, by ``covers`` rather than ``granted_types``."""
    contexts = ("system", "patient") if member_scoped else ("system",)
    return {t for t in TYPES if any(covers(s, f"{c}/{t}.rs") for s in scopes for c in contexts)}


@settings(max_examples=300, deadline=None)
@given(
    scopes=SCOPES,
    member_scoped=st.booleans(),
    types=st.none() | st.frozensets(st.sampled_from(TYPES), min_size=1),
    policy=st.sampled_from([ConsentPolicy.REGULAR, ConsentPolicy.SENSITIVE]),
)
def test_everything_holds_only_types_the_scopes_grant(
    scopes: list[str],
    member_scoped: bool,
    types: frozenset[str] | None,
    policy: ConsentPolicy,
) -> None:
    caller = principal(*scopes, patient="p1" if member_scoped else None)
    allowed = oracle(scopes, member_scoped)
    try:
        query, left_out = limit_everything(
            EverythingQuery(types=types), granted_types(caller), SUPPORTED_TYPES
        )
    except Forbidden:
        assert "Patient" not in allowed or (types is not None and not types & allowed)
        return
    plan = plan_everything(
        Compartment(MemberId("p1"), RECORDS), Store(), ReleaseTerms(policy), query
    )
    assert plan is not None
    assert {e.ref.split("/")[0] for e in plan.entries} <= allowed
    assert not query.our_provenance or "Provenance" in allowed
    named = left_out.types if left_out else frozenset()
    assert not named & allowed
    # Every type asked for either may go or is named.
    assert (types or SUPPORTED_TYPES) - allowed <= named


SEARCHES = {
    "ExplanationOfBenefit": ["ExplanationOfBenefit:provider", "ExplanationOfBenefit:insurer"],
    "Encounter": ["Encounter:service-provider"],
    "MedicationRequest": ["MedicationRequest:medication"],
}


@settings(max_examples=200, deadline=None)
@given(scopes=SCOPES, member_scoped=st.booleans(), searched=st.sampled_from(sorted(SEARCHES)))
def test_a_search_holds_no_include_or_provenance_the_scopes_do_not_grant(
    scopes: list[str], member_scoped: bool, searched: str
) -> None:
    caller = principal(*scopes, patient="p1" if member_scoped else None)
    allowed = oracle(scopes, member_scoped)
    params = [("patient", "p1"), ("_revinclude", "Provenance:target")]
    query = parse_search(
        searched, params + [("_include", i) for i in SEARCHES[searched]], max_count=100
    )
    plan = plan_search(
        query,
        RECORDS,
        Store(),
        ReleaseTerms(ConsentPolicy.SENSITIVE),
        granted=granted_types(caller),
    )
    assert plan is not None
    assert {e.ref.split("/")[0] for e in plan.entries if e.mode == "include"} <= allowed
    assert ("Provenance" in plan.left_out) is ("Provenance" not in allowed)
    assert not plan.left_out & allowed
