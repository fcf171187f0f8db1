"""The payer-to-payer data scope: claims in CARIN BB's non-financial shape, drug prior
authorizations and types outside the data set kept back, and a file that names its fault.

The shape is checked against CARIN BB 2.2.0's own pairs of examples (each full EOB and the
guide's ``-nonfinancial`` twin) and the Basis profiles' differentials; generated claims
carry money anywhere the EOB can, and none of it may leave."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.disclosure.scope import (
    DRUG_PRIOR_AUTHORIZATION,
    NOT_IN_SCOPE,
    PAYER_TO_PAYER,
    ScopeError,
    load_scope,
)
from tests import fhir_profiles

CARIN = "carin-bb-2.2.0"
EXAMPLES = fhir_profiles.DATA / CARIN / "example"
SHIPPED = (
    Path(__file__).resolve().parents[3]
    / "src/payerbridge/disclosure/data/payer-to-payer-scope.json"
)
PAIRS = [
    "Inpatient1",
    "Inpatient2",
    "Outpatient1",
    "Outpatient2",
    "Oral1",
    "Oral2",
    "Pharmacy1",
    "Professional1",
    "Professional2",
    "ProfessionalTransportation1",
]
# Where the guide's non-financial twin keeps what we remove too: its payee (who was paid,
# part of the remittance; Professional1's twin drops it, the others keep it), and
# ProfessionalTransportation1's twin still carries its totals (an erratum in the guide).
GUIDE_KEEPS = {"payee", "total"}


def _example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return document


def _money(node: Any, path: str = "") -> list[str]:
    """Where ``node`` states an amount of money (a Money: value with currency)."""
    found: list[str] = []
    if isinstance(node, dict):
        if "currency" in node or path.endswith((".amount", ".net", ".unitPrice")):
            found.append(path)
        for key, value in node.items():
            found += _money(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            found += _money(item, path)
    return found


@pytest.mark.parametrize("name", PAIRS)
def test_a_claim_leaves_as_the_guides_non_financial_example_and_validates_as_basis(
    name: str,
) -> None:
    full = _example(f"ExplanationOfBenefit-EOB{name}")
    stored = copy.deepcopy(full)
    twin = _example(f"ExplanationOfBenefit-BB-EOB{name}-nonfinancial")

    shaped, removed = PAYER_TO_PAYER.shaped(full)

    assert full == stored, "the stored record is never changed"
    assert removed and "ExplanationOfBenefit.total" in removed
    assert _money(shaped) == []
    for key in ("total", "payment", "payee", "benefitBalance"):
        assert key not in shaped
    differing = {k for k in {*shaped, *twin} - {"id"} if shaped.get(k) != twin.get(k)}
    assert differing <= GUIDE_KEEPS, differing
    (profile,) = shaped["meta"]["profile"]
    assert profile.endswith("-Basis|2.2.0")
    assert profile == twin["meta"]["profile"][0]
    basis = fhir_profiles.structure(CARIN, profile)
    assert fhir_profiles.violations(shaped, basis, CARIN) == []


def test_a_prior_authorization_keeps_its_authorized_amounts() -> None:
    authorization = {
        "resourceType": "ExplanationOfBenefit",
        "id": "pa",
        "use": "preauthorization",
        "type": {"coding": [{"system": _CLAIM_TYPE, "code": "professional"}]},
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": _CPT, "code": "99213"}]},
                "adjudication": [
                    {"category": {"text": "eligible"}, "amount": {"value": 90, "currency": "USD"}}
                ],
            }
        ],
    }
    assert PAYER_TO_PAYER.excludes(authorization) is None
    assert PAYER_TO_PAYER.shaped(authorization) == (authorization, ())


def test_coverage_leaves_without_cost_sharing() -> None:
    coverage = {
        "resourceType": "Coverage",
        "id": "c",
        "status": "active",
        "costToBeneficiary": [{"valueMoney": {"value": 20, "currency": "USD"}}],
    }
    shaped, removed = PAYER_TO_PAYER.shaped(coverage)
    assert "costToBeneficiary" not in shaped
    assert removed == ("Coverage.costToBeneficiary",)


@pytest.mark.parametrize(
    "resource_type", ["Claim", "ClaimResponse", "Account", "Invoice", "PaymentReconciliation"]
)
def test_types_outside_the_data_set_do_not_leave(resource_type: str) -> None:
    assert PAYER_TO_PAYER.excludes({"resourceType": resource_type, "id": "x"}) == NOT_IN_SCOPE


# -- generated claims and prior authorizations ------------------------------------------

_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
_CPT = "http://www.ama-assn.org/go/cpt"
_HCPCS = "https://bluebutton.cms.gov/resources/codesystem/hcpcs"
_NDC = "http://hl7.org/fhir/sid/ndc"
_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

_money_values = st.builds(
    lambda v: {"value": v, "currency": "USD"},
    st.decimals(min_value=0, max_value=10**6, places=2).map(float),
)
_category = st.sampled_from(["submitted", "eligible", "paidtoprovider", "copay", "deductible"])
_adjudication = st.one_of(
    st.builds(lambda c, m: {"category": {"text": c}, "amount": m}, _category, _money_values),
    # Non-financial: a status or a count of units, which go.
    st.just({"category": {"text": "benefitpaymentstatus"}, "reason": {"text": "innetwork"}}),
    st.builds(lambda n: {"category": {"text": "allowedunits"}, "value": n}, st.integers(1, 9)),
)


def _line(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "adjudication": st.lists(_adjudication, max_size=3),
        "net": _money_values,
        "unitPrice": _money_values,
    }
    if depth == 0:
        fields["detail"] = st.lists(_line(1), max_size=2)
    elif depth == 1:
        fields["subDetail"] = st.lists(_line(2), max_size=2)
    return st.fixed_dictionaries({"sequence": st.integers(1, 99)}, optional=fields)


_claims = st.fixed_dictionaries(
    {
        "resourceType": st.just("ExplanationOfBenefit"),
        "id": st.just("eob"),
        "use": st.sampled_from(["claim", "predetermination"]),
    },
    optional={
        "total": st.lists(
            st.builds(
                lambda c, m: {"category": {"text": c}, "amount": m}, _category, _money_values
            ),
            min_size=1,
            max_size=3,
        ),
        "payment": st.builds(lambda m: {"amount": m}, _money_values),
        "payee": st.just({"type": {"text": "provider"}}),
        "benefitBalance": st.just([{"category": {"text": "medical"}, "financial": []}]),
        "adjudication": st.lists(_adjudication, max_size=3),
        "item": st.lists(_line(0), max_size=3),
        "addItem": st.lists(_line(0), max_size=2),
        "diagnosis": st.just([{"sequence": 1, "diagnosisCodeableConcept": {"text": "x"}}]),
    },
)


@given(_claims)
def test_no_amount_of_a_generated_claim_leaves_and_the_rest_does(claim: dict[str, Any]) -> None:
    stored = copy.deepcopy(claim)
    shaped, removed = PAYER_TO_PAYER.shaped(claim)
    assert claim == stored
    assert _money(shaped) == []
    assert not {"total", "payment", "payee", "benefitBalance"} & shaped.keys()
    assert bool(removed) == (_money(claim) != [] or "payee" in claim or "benefitBalance" in claim)
    # What says no amount goes as it was: the lines, their units and statuses.
    assert shaped.get("diagnosis") == claim.get("diagnosis")
    assert [i["sequence"] for i in shaped.get("item", [])] == [
        i["sequence"] for i in claim.get("item", [])
    ]
    kept = [a for i in shaped.get("item", []) for a in i.get("adjudication", [])]
    said = [
        a for i in claim.get("item", []) for a in i.get("adjudication", []) if "amount" not in a
    ]
    assert kept == said


_drug_products = st.one_of(
    st.builds(
        lambda c: {"system": _NDC, "code": c}, st.from_regex(r"\d{5}-\d{4}-\d{2}", fullmatch=True)
    ),
    st.builds(lambda c: {"system": _RXNORM, "code": c}, st.from_regex(r"\d{4,7}", fullmatch=True)),
    st.builds(
        lambda c: {"system": _HCPCS, "code": f"J{c}"}, st.from_regex(r"\d{4}", fullmatch=True)
    ),
    # The systems as claims and pharmacies spell them: OID, case, a trailing slash.
    st.builds(
        lambda c: {"system": "urn:oid:2.16.840.1.113883.6.69", "code": c}, st.just("0054-4570-25")
    ),
    st.builds(
        lambda c: {"system": "HTTP://hl7.org/fhir/sid/NDC/", "code": c}, st.just("0093-5420-56")
    ),
)
_other_products = st.one_of(
    st.builds(lambda c: {"system": _CPT, "code": c}, st.from_regex(r"\d{5}", fullmatch=True)),
    st.builds(
        lambda c: {"system": _HCPCS, "code": c}, st.from_regex(r"[ABEGKL]\d{4}", fullmatch=True)
    ),
)


def _authorization(
    product: dict[str, Any], where: str, type_code: str, type_system: str = _CLAIM_TYPE
) -> dict[str, Any]:
    line: dict[str, Any] = {"sequence": 1, "productOrService": {"coding": [product]}}
    if where == "detail":
        line = {"sequence": 1, "productOrService": {"text": "kit"}, "detail": [line]}
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": "pa",
        "use": "preauthorization",
        "status": "active",
        "type": {"coding": [{"system": type_system, "code": type_code}]},
        "item" if where != "addItem" else "addItem": [line],
    }


@given(_drug_products, st.sampled_from(["item", "detail", "addItem"]))
def test_a_prior_authorization_for_a_drug_does_not_leave(
    product: dict[str, Any], where: str
) -> None:
    authorization = _authorization(product, where, "professional")
    assert PAYER_TO_PAYER.excludes(authorization) == DRUG_PRIOR_AUTHORIZATION


@given(
    _other_products,
    st.sampled_from(["item", "detail", "addItem"]),
    st.sampled_from([_CLAIM_TYPE, f"{_CLAIM_TYPE}/", _CLAIM_TYPE.replace("http:", "HTTPS:")]),
)
def test_a_prior_authorization_for_a_service_leaves_unless_it_is_a_pharmacy_claim(
    product: dict[str, Any], where: str, claim_type: str
) -> None:
    assert PAYER_TO_PAYER.excludes(_authorization(product, where, "professional")) is None
    pharmacy = _authorization(product, where, "pharmacy", claim_type)
    assert PAYER_TO_PAYER.excludes(pharmacy) == DRUG_PRIOR_AUTHORIZATION


# -- the file ----------------------------------------------------------------------------


def _shipped() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SHIPPED.read_text())
    return document


def test_the_shipped_file_loads_with_its_version() -> None:
    scope = load_scope(SHIPPED.read_text())
    assert scope.label == f"payer-to-payer@{_shipped()['version']}"
    assert "ExplanationOfBenefit" in scope.types and "Claim" not in scope.types


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["resources"][0].update(source="nowhere"), "resources.0.source"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["resources"].append(dict(d["resources"][0])), "resources.27.type"),
        (
            lambda d: d.__setitem__("resources", [{"type": "Condition", "source": "p2p-data-set"}]),
            "resources",
        ),
        (
            lambda d: d["nonFinancialClaims"]["removed"][0].update(path="total..x"),
            "nonFinancialClaims.removed.0.path",
        ),
        (lambda d: d["costSharing"]["removed"][0].pop("resourceType"), "costSharing"),
        (lambda d: d.pop("version"), "version"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(change: Any, field: str) -> None:
    document = _shipped()
    change(document)
    with pytest.raises(ScopeError) as refused:
        load_scope(json.dumps(document))
    assert refused.value.field == field


def test_another_payers_patient_kept_beside_ours_never_goes_to_another_payer() -> None:
    """ADR 0054: an old payer's Patient for the member, kept linked to the plan's, is that
    plan's record (its identifiers); the member's own Patient goes, the source does not.
    The plan's own organization reads both (the whole record)."""
    from payerbridge.consent.model import ConsentPolicy
    from payerbridge.disclosure.release import release
    from payerbridge.disclosure.scope import ANOTHER_PAYERS_PATIENT, WHOLE_RECORD
    from payerbridge.exchange.received.merge import source_patient

    ours = {"resourceType": "Patient", "id": "plan-m1"}
    theirs = source_patient(
        {"resourceType": "Patient", "id": "src", "identifier": [{"value": "OLD-1"}]}, "plan-m1"
    )
    assert PAYER_TO_PAYER.excludes(theirs) == ANOTHER_PAYERS_PATIENT
    assert PAYER_TO_PAYER.excludes(ours) is None

    class _NoShared:
        def read_many(self, refs: list[str]) -> list[dict[str, Any]]:
            return []

    for policy in ConsentPolicy:
        went = release([ours, theirs], _NoShared(), policy).resources
        assert [r["id"] for r in went] == ["plan-m1"], policy
    whole = release([ours, theirs], _NoShared(), ConsentPolicy.SENSITIVE, scope=WHOLE_RECORD)
    assert [r["id"] for r in whole.resources] == ["plan-m1", "src"]
