"""Reading a directory bundle (pure): payer organizations with their payer-to-payer
endpoints, in order and state; other use cases passed over; defects named by entry; a
bundle of nothing usable refused whole; the entry order never matters."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.errors import UnprocessableRequest
from payerbridge.routing.directory_bundle import (
    DirectoryBundle,
    partner_id_of,
    read_directory_bundle,
)
from payerbridge.routing.endpoints import EndpointStatus
from tests.directory_builders import bundle, endpoint, one_payer, organization

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ACME, OTHER = "1234567893", "9876543213"


def read(document: Any, name: str = "file.json") -> DirectoryBundle:
    return read_directory_bundle(document, fallback_name=name, now=NOW)


def test_a_payer_and_its_payer_to_payer_endpoints_in_the_order_it_lists_them() -> None:
    document = bundle(
        organization("acme", "Acme Health Plan", ACME, ["b", "a", "portal"]),
        endpoint("a", "https://a.acme.example/fhir"),
        endpoint("b", "https://b.acme.example/fhir"),
        endpoint("portal", "https://portal.acme.example/fhir", use="patientAccess"),
        endpoint("c", "https://c.acme.example/fhir", managed_by="acme"),
    )
    read_bundle = read(document)
    (found,) = read_bundle.organizations
    assert (found.partner_id, found.name, found.npi, found.udap) == (
        "acme-health-plan",
        "Acme Health Plan",
        ACME,
        False,
    )
    assert [(e.url, e.priority) for e in found.endpoints] == [
        ("https://b.acme.example/fhir", 1),
        ("https://a.acme.example/fhir", 2),
        ("https://c.acme.example/fhir", 3),  # named by managingOrganization: after
    ]
    assert {e.source for e in found.endpoints} == {"directory test-directory"}
    assert read_bundle.not_ours == 1  # the patient-access endpoint
    assert read_bundle.issues == ()


def test_the_rank_extension_orders_endpoints_and_udap_is_read() -> None:
    document = bundle(
        organization("acme", "Acme", ACME, ["a", "b"]),
        endpoint("a", "https://a.example/fhir", rank=5),
        endpoint("b", "https://b.example/fhir", rank=1, udap=True),
    )
    (found,) = read(document).organizations
    assert [e.url for e in found.endpoints] == ["https://b.example/fhir", "https://a.example/fhir"]
    assert found.udap


def test_an_affiliation_reaches_endpoints_and_the_name_is_the_files_without_identifier() -> None:
    affiliation = {
        "resourceType": "OrganizationAffiliation",
        "id": "aff",
        "participatingOrganization": {"reference": "Organization/acme"},
        "endpoint": [{"reference": "https://directory.example/fhir/Endpoint/x"}],
    }
    document = bundle(
        organization("acme", "Acme", ACME),
        endpoint("x", "https://x.example/fhir"),
        affiliation,
        identifier=None,
    )
    read_bundle = read(document, "sandbox-directory.json")
    assert read_bundle.directory == "sandbox-directory.json"
    assert [e.url for e in read_bundle.organizations[0].endpoints] == ["https://x.example/fhir"]


@pytest.mark.parametrize("status", ["suspended", "error", "off", "entered-in-error", "test"])
def test_an_endpoint_the_directory_turns_off_is_kept_off_with_why(status: str) -> None:
    document = bundle(
        organization("acme", "Acme", ACME, ["on", "off"]),
        endpoint("on", "https://on.example/fhir"),
        endpoint("off", "https://off.example/fhir", status=status),
    )
    off = read(document).organizations[0].endpoints[1]
    assert off.status is EndpointStatus.OFF
    assert off.note is not None and status in off.note


@pytest.mark.parametrize(
    ("period", "said"),
    [
        ({"end": "2026-11-28"}, "ended 2026-11-28"),
        ({"end": "2026-11-29T11:00:00Z"}, "ended"),
        ({"start": "2027"}, "starts 2027"),
        ({"start": "2026-12"}, "starts 2026-12"),
    ],
)
def test_an_endpoint_outside_its_period_is_off(period: dict[str, str], said: str) -> None:
    document = bundle(
        organization("acme", "Acme", ACME, ["on", "dated"]),
        endpoint("on", "https://on.example/fhir"),
        endpoint("dated", "https://dated.example/fhir", period=period),
    )
    dated = read(document).organizations[0].endpoints[1]
    assert dated.status is EndpointStatus.OFF
    assert dated.note is not None and said in dated.note


def test_an_endpoint_inside_its_period_stays_active() -> None:
    document = one_payer("Acme", ACME, "https://on.example/fhir")
    document["entry"][1]["resource"]["period"] = {"start": "2026-11-29", "end": "2026-11-29"}
    assert read(document).organizations[0].endpoints[0].status is EndpointStatus.ACTIVE


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("https://user:secret@acme.example/fhir", "security"),
        ("ftp://acme.example/fhir", "value"),
        ("acme.example/fhir", "value"),
        ("https://acme.example/fhir?x=1", "value"),
    ],
)
def test_a_bad_address_is_refused_naming_its_entry(address: str, code: str) -> None:
    document = bundle(
        organization("acme", "Acme", ACME, ["bad"]),
        endpoint("bad", address),
        organization("other", "Other Plan", OTHER, ["good"]),
        endpoint("good", "https://other.example/fhir"),
    )
    read_bundle = read(document)
    assert [o.partner_id for o in read_bundle.organizations] == ["other-plan"]
    (issue,) = read_bundle.issues
    assert (issue.expression, issue.code) == ("Bundle.entry[1].resource.address", code)
    assert "secret" not in issue.text
    (skipped,) = read_bundle.skipped
    assert (skipped.partner_id, skipped.entry) == ("acme", "Bundle.entry[0]")


@pytest.mark.parametrize("npi", [None, "1234567890", "12345"])
def test_a_payer_without_a_valid_npi_is_not_imported(npi: str | None) -> None:
    document = bundle(
        organization("acme", "Acme", npi, ["a"]),
        endpoint("a", "https://a.example/fhir"),
    )
    with pytest.raises(UnprocessableRequest) as refused:
        read(document)
    expressions = [i.expression for i in refused.value.issues]
    assert "Bundle.entry[0].resource.identifier" in expressions


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"resourceType": "Patient"},
        {"resourceType": "Bundle"},
        bundle(endpoint("a", "https://a.example/fhir", use="patientAccess")),
    ],
    ids=["not-an-object", "not-a-bundle", "no-entry", "nothing-payer-to-payer"],
)
def test_an_unusable_bundle_is_refused_whole(document: Any) -> None:
    with pytest.raises(UnprocessableRequest) as refused:
        read(document)
    assert refused.value.issues


def test_an_organization_with_no_active_endpoint_is_skipped_with_why() -> None:
    document = bundle(
        organization("acme", "Acme", ACME, ["a"]),
        endpoint("a", "https://a.example/fhir", status="off"),
        organization("other", "Other", OTHER, ["b"]),
        endpoint("b", "https://b.example/fhir"),
    )
    (skipped,) = read(document).skipped
    assert skipped.partner_id == "acme" and "active" in skipped.why


def test_two_organizations_of_one_name_are_both_skipped() -> None:
    document = bundle(
        organization("a", "Same Plan", ACME, ["a"]),
        endpoint("a", "https://a.example/fhir"),
        organization("b", "Same  plan", OTHER, ["b"]),
        endpoint("b", "https://b.example/fhir"),
        organization("c", "Third", "1111111112", ["c"]),
        endpoint("c", "https://c.example/fhir"),
    )
    read_bundle = read(document)
    assert [o.partner_id for o in read_bundle.organizations] == ["third"]
    assert {i.code for i in read_bundle.issues} == {"duplicate"}


def test_a_partner_id_is_the_names_slug() -> None:
    assert partner_id_of("  Acme Health & Life, Inc. ", ACME) == "acme-health-life-inc"
    assert partner_id_of("***", ACME) == f"npi-{ACME}"
    assert len(partner_id_of("x" * 100, ACME)) == 64


# Hypothesis: bundles of a few payers, each with endpoints of several use cases, states
# and defects.
_ENDPOINT = st.tuples(
    st.sampled_from(["payerToPayer", "payerToPayer", "patientAccess", "cdex"]),
    st.sampled_from(["active", "active", "off", "test"]),
    st.one_of(st.none(), st.integers(1, 5)),
    st.booleans(),  # named by the Organization (else by managingOrganization)
    st.sampled_from([None, None, None, "credentials", "relative", "ended", "future"]),
)
_NPIS = ["1234567893", "9876543213", "1111111112"]
_PERIODS = {"ended": {"end": "2020-01-01"}, "future": {"start": "2099-01-01"}}


def _address(endpoint_id: str, defect: str | None) -> str:
    if defect == "credentials":
        return f"https://user:pass@{endpoint_id}.example/fhir"
    if defect == "relative":
        return f"{endpoint_id}.example/fhir"
    return f"https://{endpoint_id}.example/fhir"


@st.composite
def _bundles(draw: st.DrawFn) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 3))):
        listed = []
        drawn = draw(st.lists(_ENDPOINT, min_size=1, max_size=4))
        for m, (use, status, rank, named, defect) in enumerate(drawn):
            endpoint_id = f"e{n}-{m}"
            resources.append(
                endpoint(
                    endpoint_id,
                    _address(endpoint_id, defect),
                    use=use,
                    status=status,
                    rank=rank,
                    period=_PERIODS.get(defect or ""),
                    managed_by=None if named else f"o{n}",
                )
            )
            if named:
                listed.append(endpoint_id)
        resources.append(organization(f"o{n}", f"Payer {n}", _NPIS[n], listed))
    return bundle(*resources)


def _said(read_bundle: DirectoryBundle) -> list[dict[str, Any]]:
    """What the bundle says, where it says it aside."""
    return [{**o.to_json(), "entry": None} for o in read_bundle.organizations]


def _read_or_refused(document: Any) -> DirectoryBundle | None:
    try:
        return read(document)
    except UnprocessableRequest:
        return None


def _use(resource: dict[str, Any]) -> str:
    extension = resource["extension"][0]["extension"][0]
    code: str = extension["valueCodeableConcept"]["coding"][0]["code"]
    return code


@given(document=_bundles(), order=st.randoms(use_true_random=False))
@settings(max_examples=150)
def test_the_entry_order_does_not_matter(document: dict[str, Any], order: Any) -> None:
    shuffled = copy.deepcopy(document)
    order.shuffle(shuffled["entry"])
    first, second = _read_or_refused(document), _read_or_refused(shuffled)
    assert (first is None) == (second is None)
    if first is not None and second is not None:
        assert _said(first) == _said(second)
        assert first.not_ours == second.not_ours
        assert len(first.issues) == len(second.issues)


@given(document=_bundles())
@settings(max_examples=150)
def test_what_is_imported_is_payer_to_payer_sound_and_in_its_state(
    document: dict[str, Any],
) -> None:
    endpoints = {
        n: e["resource"]
        for n, e in enumerate(document["entry"])
        if e["resource"]["resourceType"] == "Endpoint"
    }
    bad = {
        n
        for n, r in endpoints.items()
        if "example" in r["address"]
        and ("@" in r["address"] or not r["address"].startswith("https://"))
    }
    ours_bad = {n for n in bad if _use(endpoints[n]) == "payerToPayer"}
    read_bundle = _read_or_refused(document)
    expressions = {i.expression for i in read_bundle.issues} if read_bundle is not None else set()
    if read_bundle is None:
        return
    # A defective payer-to-payer address is named by its entry; its organization waits.
    for n in ours_bad:
        assert f"Bundle.entry[{n}].resource.address" in expressions
    # Endpoint e{n}-{m} is payer n's, whose partner id is payer-{n}.
    waiting = {f"payer-{endpoints[n]['id'].split('-')[0][1:]}" for n in ours_bad}
    assert not waiting & {o.partner_id for o in read_bundle.organizations}
    by_address = {r["address"]: r for r in endpoints.values()}
    for found in read_bundle.organizations:
        for imported in found.endpoints:
            source = by_address[imported.url]
            assert _use(source) == "payerToPayer"  # another use case is never imported
            assert imported.url not in {endpoints[n]["address"] for n in bad}
            on = source["status"] == "active" and "period" not in source
            assert imported.status is (EndpointStatus.ACTIVE if on else EndpointStatus.OFF)
            if not on:
                assert imported.note
        assert any(e.status is EndpointStatus.ACTIVE for e in found.endpoints)
        priorities = [e.priority for e in found.endpoints]
        assert priorities == sorted(priorities)


def test_a_curated_bundle_fixes_the_partner_id() -> None:
    fixed = "https://payerbridge.dev/fhir/NamingSystem/partner-id"
    document = bundle(
        organization("acme", "Acme", ACME, ["a"]),
        endpoint("a", "https://a.example/fhir"),
        organization("other", "Other", OTHER, ["b"]),
        endpoint("b", "https://b.example/fhir"),
    )
    document["entry"][0]["resource"]["identifier"].append({"system": fixed, "value": "old-acme"})
    document["entry"][2]["resource"]["identifier"].append({"system": fixed, "value": "Not An Id"})
    read_bundle = read(document)
    assert [o.partner_id for o in read_bundle.organizations] == ["old-acme"]
    (issue,) = read_bundle.issues
    assert issue.expression == "Bundle.entry[2].resource.identifier"
