"""Bulk export requests: every parameter we implement read, every other refused by name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.errors import Forbidden, InvalidInput
from payerbridge.fhir.bulk_export import ExportRequest, export_parameters, parse_export_request
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.security.model import MEMBER_MATCH_SCOPE, Principal, covers, granted_types
from payerbridge.types import ClientId

P2P = "hl7.fhir.us.davinci-pdex#payertopayer"


def test_what_is_asked_is_read_and_survives_the_jobs_row() -> None:
    request = parse_export_request(
        [
            ("exportType", P2P),
            ("_type", "Condition,Coverage"),
            ("_type", "Patient"),
            ("_since", "2024-01-01T00:00:00Z"),
            ("_until", "2025-01-01T00:00:00+02:00"),
            ("patient", "Patient/a"),
            ("patient", "Patient/b"),
            ("patient", "Patient/a"),
            ("_outputFormat", "application/fhir+ndjson"),
        ]
    )
    assert request.types == {"Condition", "Coverage", "Patient"}
    assert request.since == datetime(2024, 1, 1, tzinfo=UTC)
    assert request.patients == ("a", "b")
    assert ExportRequest.from_json(request.to_json()) == request
    assert parse_export_request([]) == ExportRequest(None, None, None, None)


@pytest.mark.parametrize(
    ("name", "value", "code", "words"),
    [
        ("exportType", "hl7.fhir.us.davinci-pdex#provider-snapshot", "not-supported", P2P),
        ("_typeFilter", "Condition?category=x", "not-supported", "_typeFilter"),
        ("_elements", "id", "not-supported", "_elements"),
        ("_type", "Spaceship", "not-supported", "Spaceship"),
        ("_since", "2024-01-01", "invalid", "time zone"),
        ("patient", "Group/x", "invalid", "Patient/[id]"),
        ("_outputFormat", "text/csv", "not-supported", "ndjson"),
        ("_count", "10", "not-supported", "supported:"),
    ],
)
def test_what_we_do_not_do_is_refused_by_name(name: str, value: str, code: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_export_request([(name, value)])
    [issue] = refused.value.issues
    assert issue.code == code and issue.expression == name and words in issue.text


def test_every_problem_is_named_at_once_and_the_period_must_be_ordered() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_export_request(
            [
                ("_since", "2025-01-01T00:00:00Z"),
                ("_until", "2024-01-01T00:00:00Z"),
                ("_since", "2025-01-01T00:00:00Z"),
                ("_typeFilter", "x"),
            ]
        )
    assert [i.expression for i in refused.value.issues] == ["_since", "_typeFilter", "_until"]


def test_a_parameters_body_reads_as_the_query_string_would() -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "exportType", "valueCanonical": P2P},
            {"name": "patient", "valueReference": {"reference": "Patient/a"}},
            {"name": "_type", "valueString": "Condition"},
        ],
    }
    assert export_parameters(body) == [
        ("exportType", P2P),
        ("patient", "Patient/a"),
        ("_type", "Condition"),
    ]
    with pytest.raises(InvalidInput) as refused:
        export_parameters({"resourceType": "Parameters", "parameter": [{"name": "_type"}]})
    assert "exactly one value" in refused.value.issues[0].text
    with pytest.raises(InvalidInput):
        export_parameters({"resourceType": "Bundle"})


@pytest.mark.parametrize(
    ("types", "exact", "ours"),
    [
        (None, True, True),  # Bulk Data's $export, every type: Provenance too
        ("Coverage", True, False),  # _type leaves Provenance out
        ("Coverage,Provenance", True, True),
        ("Coverage", False, True),  # PDex: our transmitter Provenance whatever _type says
    ],
)
def test_which_operation_decides_whether_our_provenance_goes(
    types: str | None, exact: bool, ours: bool
) -> None:
    params = [("_type", types)] if types is not None else []
    asked = parse_export_request(params, exact_types=exact)
    assert (asked.exact_types, asked.has_our_provenance) == (exact, ours)
    assert ExportRequest.from_json(asked.to_json()) == asked


def test_a_job_accepted_before_the_rule_was_kept_reads_as_pdex() -> None:
    old_row = {"types": ["Coverage"], "since": None, "until": None, "patients": None}
    assert ExportRequest.from_json(old_row).exact_types is False


# Scopes as SMART v1 and v2 write them, and forms that grant no read of a type.
_TYPES = sorted(SUPPORTED_TYPES)
_GRANTING = st.builds(
    lambda context, kind, access: f"{context}/{kind}.{access}",
    st.just("system"),
    st.sampled_from([*_TYPES, "*"]),
    st.sampled_from(["rs", "read", "cruds", "*"]),
)
_NOT_GRANTING = st.sampled_from(
    [
        "system/Patient.r",  # read without search: not enough to export
        "system/Coverage.s",
        "system/Condition.write",
        "patient/Coverage.rs",  # another context
        "system/Spaceship.rs",
        MEMBER_MATCH_SCOPE,
        "payerbridge/operator",
    ]
)


@settings(max_examples=300)
@given(
    scopes=st.frozensets(st.one_of(_GRANTING, _NOT_GRANTING), max_size=6),
    asked=st.none() | st.frozensets(st.sampled_from(_TYPES), min_size=1),
    exact=st.booleans(),
)
def test_an_export_holds_only_types_the_token_grants_and_names_the_rest(
    scopes: frozenset[str], asked: frozenset[str] | None, exact: bool
) -> None:
    """Whatever the scopes and _type: every type that goes is granted by some scope, every
    type wanted and not granted is named, and a token granting none of them is refused."""
    principal = Principal(ClientId("c"), "1234567893", scopes)
    request = ExportRequest(asked, None, None, None, exact)
    granted = granted_types(principal)
    wanted = set(_TYPES if asked is None else asked)
    if not exact and asked is not None:
        wanted |= {"Patient", "Provenance"}
    try:
        limited = request.limited_to(granted, "system/")
    except Forbidden:
        assert granted is not None and not wanted & granted
        return
    goes = set(_TYPES) if limited.types is None else set(limited.types)
    if not limited.exact_types:  # PDex's rule, unlimited: the Patient and ours go too
        goes |= {"Patient", "Provenance"}
    for kind in goes:
        assert any(covers(scope, f"system/{kind}.rs") for scope in scopes), kind
    left_out = wanted - goes
    named = " ".join(notice.text for notice in limited.notices)
    assert all(kind in named for kind in left_out)
    assert bool(left_out) == bool(limited.notices)
    if "Provenance" not in goes:
        assert not limited.has_our_provenance
    assert ExportRequest.from_json(limited.to_json()) == limited


def test_lenient_handling_names_what_it_leaves_out_and_still_refuses_type_filter() -> None:
    params = [
        ("_elements", "id"),
        ("includeAssociatedData", "LatestProvenanceResources"),
        ("_type", "Coverage,Spaceship"),
    ]
    with pytest.raises(InvalidInput) as strict:
        parse_export_request(params)
    assert [i.expression for i in strict.value.issues] == [
        "_elements",
        "includeAssociatedData",
        "_type",
    ]
    assert "handling=lenient" in strict.value.issues[0].text
    lenient = parse_export_request(params, lenient=True)
    assert lenient.types == {"Coverage"}
    assert [n.parameter for n in lenient.notices] == ["_elements", "includeAssociatedData", "_type"]
    assert ExportRequest.from_json(lenient.to_json()) == lenient
    with pytest.raises(InvalidInput):
        parse_export_request([("_typeFilter", "Coverage?status=active")], lenient=True)
    with pytest.raises(InvalidInput):  # nothing left to export
        parse_export_request([("_type", "Spaceship")], lenient=True)
    with pytest.raises(InvalidInput):  # the system-level export takes no patient
        parse_export_request([("patient", "Patient/a")], takes_patient=False)
