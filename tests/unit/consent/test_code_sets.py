"""The sensitive code sets as versioned data: what ships, what an operator adds, and
the additions that are refused because they would rewrite or blur what is withheld."""

from __future__ import annotations

from typing import Any

import pytest

from payerbridge.consent import SegmentationPolicy
from payerbridge.consent.categories import (
    ICD10CM,
    RXNORM,
    SHIPPED_CODE_SETS,
    CodeSetError,
    code_sets_from,
    extended,
)
from payerbridge.consent.segmentation import sensitive_categories_of


def drug_order(rxnorm: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "m",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
        "subject": {"reference": "Patient/p1"},
    }


def extension(*categories: dict[str, Any], version: str = "plan-7") -> dict[str, Any]:
    return {"version": version, "categories": list(categories)}


LOCAL = {
    "name": "plan-local",
    "description": "Drugs our state's law protects",
    "legal_basis": "State statute (example)",
    "codes": [{"system": RXNORM, "code": "197361", "display": "amlodipine 5 MG Oral Tablet"}],
}


def test_the_shipped_sets_have_a_version_a_digest_and_every_category_documented() -> None:
    assert SHIPPED_CODE_SETS.version == "payerbridge-2027.01"
    assert SHIPPED_CODE_SETS.label.startswith("payerbridge-2027.01 sha256:")
    names = {category.name for category in SHIPPED_CODE_SETS.categories}
    assert {"substance-use", "hiv", "behavioral-health", "genetic", "restricted"} <= names
    for category in SHIPPED_CODE_SETS.categories:
        assert category.description and category.legal_basis and category.security_labels


def test_an_extension_adds_a_category_and_the_version_says_so() -> None:
    sets = extended(SHIPPED_CODE_SETS, extension(LOCAL))
    assert sets.version == "payerbridge-2027.01+plan-7"
    assert sets.digest != SHIPPED_CODE_SETS.digest
    policy = SegmentationPolicy(code_sets=sets)
    assert sensitive_categories_of(drug_order("197361"), policy) == {"plan-local"}
    assert sensitive_categories_of(drug_order("197361")) == frozenset()


def test_an_extension_adds_codes_to_a_shipped_category_and_keeps_the_shipped_ones() -> None:
    more_hiv = {"name": "hiv", "codes": [{"system": RXNORM, "code": "1147334"}]}
    policy = SegmentationPolicy(code_sets=extended(SHIPPED_CODE_SETS, extension(more_hiv)))
    assert sensitive_categories_of(drug_order("1147334"), policy) == {"hiv"}
    assert sensitive_categories_of(drug_order("1999667"), policy) == {"hiv"}


def test_the_digest_is_of_what_the_sets_match_not_of_how_the_file_is_written() -> None:
    dotted = {**LOCAL, "code_prefixes": [{"system": ICD10CM, "code": "E11.6"}]}
    undotted = {**LOCAL, "code_prefixes": [{"system": ICD10CM, "code": "e116"}]}
    more = [*LOCAL["codes"], {"system": RXNORM, "code": "17767"}]
    dotted["codes"] = more
    undotted["codes"] = more[::-1]  # another order, same codes
    first = extended(SHIPPED_CODE_SETS, extension(dotted))
    assert first.digest == extended(SHIPPED_CODE_SETS, extension(undotted)).digest
    assert first.digest != extended(SHIPPED_CODE_SETS, extension(LOCAL)).digest


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (extension({"name": "hiv", "description": "something milder"}), "does not rewrite"),
        (extension({**LOCAL, "legal_basis": None}), "needs a description and a legal_basis"),
        (extension({**LOCAL, "codes": []}), "names no security label, code, code prefix or term"),
        (extension({**LOCAL, "code": []}), "categories.0.code"),
        (extension({**LOCAL, "codes": [{"system": RXNORM}]}), "categories.0.codes.0.code"),
        (extension(LOCAL, LOCAL), "plan-local given more than once"),
        (extension(LOCAL, version="plan 7"), "version"),
        (extension(), "categories"),
        ({"categories": [LOCAL]}, "version"),
        ([LOCAL], "document"),
    ],
)
def test_an_extension_that_cannot_be_used_is_refused_saying_where(document: Any, says: str) -> None:
    with pytest.raises(CodeSetError, match=says):
        extended(SHIPPED_CODE_SETS, document)


def test_a_complete_document_needs_every_category_described() -> None:
    with pytest.raises(CodeSetError, match="a new category needs"):
        code_sets_from(extension({"name": "bare", "codes": LOCAL["codes"]}))
