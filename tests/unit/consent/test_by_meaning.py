"""Sensitive by meaning, not by spelling (issue 67, item 2; ADR 0043), in process:
free text judged by the shipped terms however it is written and wherever it sits, and
never inside another word; an NDC in every layout a pharmacy writes; a Part 2 program
withheld with everything that refers to it; a record with neither a code nor text
released."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.consent.categories import NDC, SHIPPED_CODE_SETS, ndc_forms
from payerbridge.consent.segmentation import segment, sensitive_categories_of
from tests.sensitive_codes import SENSITIVE_TERMS, disguises

Resource = dict[str, Any]

CATEGORIES_OF_TERM = {
    (term.text, term.case_sensitive): {
        c.name for c in SHIPPED_CODE_SETS.categories for t in c.terms if t.text == term.text
    }
    for c in SHIPPED_CODE_SETS.categories
    for term in c.terms
}


def placed(text: str, where: str) -> Resource:
    """``text`` where free text sits in FHIR R4."""
    base: Resource = {"id": "r", "subject": {"reference": "Patient/p"}}
    if where == "code.text":
        return {"resourceType": "Condition", **base, "code": {"text": text}}
    if where == "display":
        return {"resourceType": "Condition", **base, "code": {"coding": [{"display": text}]}}
    if where == "note":
        return {"resourceType": "Observation", **base, "note": [{"text": text}]}
    if where == "valueString":
        return {"resourceType": "Observation", **base, "valueString": text}
    if where == "narrative":
        div = f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{text}</p></div>'
        return {"resourceType": "Condition", **base, "text": {"status": "generated", "div": div}}
    return {"resourceType": "Organization", "id": "o", "name": text}


PLACES = ["code.text", "display", "note", "valueString", "narrative", "name"]
NEUTRAL = st.sampled_from(["", "Seen today. ", "Plan: ", "(", "1) ", "history of "])
NEUTRAL_AFTER = st.sampled_from(["", ".", ", follow up in 2 weeks", ")", "; stable"])


@given(st.sampled_from(SENSITIVE_TERMS), st.data())
def test_a_term_is_found_however_it_is_written_and_wherever_it_sits(
    term: tuple[str, bool], data: st.DataObject
) -> None:
    written = data.draw(st.sampled_from(disguises(*term)))
    where = data.draw(st.sampled_from(PLACES))
    text = data.draw(NEUTRAL) + written + data.draw(NEUTRAL_AFTER)
    assert CATEGORIES_OF_TERM[term] <= sensitive_categories_of(placed(text, where)), text


@given(st.sampled_from(SENSITIVE_TERMS), st.sampled_from(PLACES))
def test_a_term_inside_another_word_is_not_found(term: tuple[str, bool], where: str) -> None:
    # "hiv" in "archive": letters either side make another word.
    assert sensitive_categories_of(placed(f"zq{term[0]}zq", where)) == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HEARING AIDS, both ears", set()),
        ("walking aids", set()),
        ("aids in recovery", set()),
        ("AIDS-defining illness", {"hiv"}),
        ("bowel prep completed", set()),
        ("PrEP started", {"hiv"}),
        ("depression screening negative", set()),
        ("archive", set()),
        ("HIV-1 RNA", {"hiv"}),
        ("Ｈｕｍａｎ immunodeficiency virus", {"hiv"}),
        ("grape juice", set()),
    ],
)
def test_words_that_only_look_sensitive_are_not(text: str, expected: set[str]) -> None:
    assert sensitive_categories_of(placed(text, "note")) == expected


def test_codes_are_judged_as_codes_not_as_words() -> None:
    # A v3-ActReason HIV and a local code "AIDS" are codes of systems without sensitive
    # codes: the words are not read in them.
    reason = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HIV"}
    labelled = {"resourceType": "Coverage", "id": "c", "meta": {"security": [reason]}}
    assert sensitive_categories_of(labelled) == frozenset()


# -- NDC: the crosswalk in every layout

NDC_PRODUCTS = sorted(
    (code, category.name)
    for category in SHIPPED_CODE_SETS.categories
    for system, code in category.code_prefixes
    if system == NDC
)


def layouts(product: str, package: str) -> list[str]:
    """An NDC product (9 digits, 5-4) and a 2-digit package as pharmacies write it: the
    11-digit billing form, 5-4-2, and the 10-digit layout the labeler and product have
    (4-4-2 for a labeler 0xxxx, 5-3-2 for a product 0xxx, 5-4-1 for a package 0x),
    hyphenated and not."""
    labeler, item = product[:5], product[5:]
    found = [product + package, f"{labeler}-{item}-{package}", f"{labeler}-{item}"]
    if labeler.startswith("0"):
        found += [f"{labeler[1:]}-{item}-{package}", f"{labeler[1:]}{item}{package}"]
    if item.startswith("0"):
        found += [f"{labeler}-{item[1:]}-{package}", f"{labeler}{item[1:]}{package}"]
    if package.startswith("0"):
        found += [f"{labeler}-{item}-{package[1:]}", f"{labeler}{item}{package[1:]}"]
    return found


@given(
    st.sampled_from(NDC_PRODUCTS),
    st.from_regex(r"\A[0-9]{2}\Z"),
    st.sampled_from([NDC, "urn:oid:2.16.840.1.113883.6.69", "https://hl7.org/fhir/sid/ndc/"]),
    st.data(),
)
def test_an_ndc_of_a_sensitive_product_is_found_in_every_layout(
    product: tuple[str, str], package: str, system: str, data: st.DataObject
) -> None:
    code, name = product
    written = data.draw(st.sampled_from(layouts(code, package)))
    dispense = {"resourceType": "MedicationDispense", "id": "d", "medicationCodeableConcept":
                {"coding": [{"system": system, "code": written}]}}  # fmt: skip
    assert name in sensitive_categories_of(dispense), written


def test_ndc_forms_pad_each_layout_where_its_hyphens_say() -> None:
    assert ndc_forms("0002-1072-02") == ("00002107202",)  # 4-4-2
    assert ndc_forms("12496-128-02") == ("12496012802",)  # 5-3-2
    assert ndc_forms("12496-1208-3") == ("12496120803",)  # 5-4-1
    assert ndc_forms("12496-1208") == ("124961208",)  # a product, no package
    assert len(ndc_forms("1249612083")) == 3  # ten digits: each layout, fail closed


# -- a Part 2 program, by what it is, and everything that refers to it


def ref(key: str) -> dict[str, str]:
    return {"reference": key}


def test_a_program_known_by_its_name_is_withheld_with_everything_that_refers_to_it() -> None:
    program = {"resourceType": "Organization", "id": "otp", "name": "Eastside Methadone Clinic"}
    site = {
        "resourceType": "Location",
        "id": "site",
        "managingOrganization": ref("Organization/otp"),
    }
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "managingOrganization": ref("Organization/otp"),
    }
    stay = {"resourceType": "Encounter", "id": "e1", "subject": ref("Patient/p"),
            "location": [{"location": ref("Location/site")}]}  # fmt: skip
    claim = {"resourceType": "ExplanationOfBenefit", "id": "x", "patient": ref("Patient/p"),
             "facility": ref("Location/site")}  # fmt: skip
    role = {
        "resourceType": "PractitionerRole",
        "id": "role",
        "organization": ref("Organization/otp"),
    }
    seen = {"resourceType": "Observation", "id": "o", "performer": [ref("PractitionerRole/role")]}
    unit = {"resourceType": "Organization", "id": "unit", "partOf": ref("Organization/otp")}
    other = {"resourceType": "Encounter", "id": "e2", "subject": ref("Patient/p")}
    result = segment([program, site, patient, stay, claim, role, seen, unit, other])
    kept = {f"{r['resourceType']}/{r['id']}": r for r in result.kept}
    assert set(kept) == {"Patient/p", "Encounter/e2", "Organization/unit"}
    # The member and an organization in an org chart are kept, without the link.
    assert "managingOrganization" not in kept["Patient/p"]
    assert kept["Organization/unit"] == {"resourceType": "Organization", "id": "unit"}


def test_a_site_of_another_kind_is_not_a_program() -> None:
    # An HIV clinic is withheld, but a visit there is kept without the link (only a
    # Part 2 program's visits are withheld for being there).
    clinic = {"resourceType": "Organization", "id": "c", "name": "Northside HIV Clinic"}
    visit = {"resourceType": "Encounter", "id": "e", "serviceProvider": ref("Organization/c")}
    [kept] = segment([clinic, visit]).kept
    assert kept == {"resourceType": "Encounter", "id": "e"}


def test_a_record_with_neither_a_code_nor_text_is_released() -> None:
    bare = {"resourceType": "Condition", "id": "c", "subject": ref("Patient/p")}
    assert segment([bare]).kept == [bare]


def test_an_operator_adds_terms_and_the_digest_says_so() -> None:
    from payerbridge.consent.categories import extended
    from payerbridge.consent.segmentation import SegmentationPolicy

    terms = [{"term": "Crisis Stabilization Unit"}]
    document = {"version": "plan-8", "categories": [{"name": "behavioral-health", "terms": terms}]}
    added = extended(SHIPPED_CODE_SETS, document)
    assert added.digest != SHIPPED_CODE_SETS.digest
    note = placed("Admitted to the crisis-stabilization unit", "note")
    assert sensitive_categories_of(note) == frozenset()
    assert sensitive_categories_of(note, SegmentationPolicy(code_sets=added)) == {
        "behavioral-health"
    }
