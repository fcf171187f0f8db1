"""Sensitive codes and terms, and the ways real systems spell them, for the generated
tests of recognition (unit) and of leaks through HTTP (e2e). The OIDs are written here by
hand, from the FHIR terminology registry, so that a wrong one in the product is caught;
the disguises of a term (case, full-width forms, hyphens, line breaks, character
references) are written here too, not taken from the product's normalisation."""

from __future__ import annotations

from payerbridge.consent.categories import (
    CPT,
    HCPCS,
    ICD10CM,
    ICD10PCS,
    LOINC,
    NDC,
    NUCC,
    RXNORM,
    SHIPPED_CODE_SETS,
    SNOMED,
)

SENSITIVE_TERMS = sorted(
    {(term.text, term.case_sensitive) for c in SHIPPED_CODE_SETS.categories for term in c.terms}
)
"""Every shipped term (as normalised: lower case unless case-sensitive), and whether it
is matched only as written."""

SENSITIVE_CODES = sorted(
    {pair for c in SHIPPED_CODE_SETS.categories for pair in c.codes}
    | {(s, p) for c in SHIPPED_CODE_SETS.categories for s, p in c.code_prefixes}
)
OIDS = {
    ICD10CM: "2.16.840.1.113883.6.90",
    SNOMED: "2.16.840.1.113883.6.96",
    LOINC: "2.16.840.1.113883.6.1",
    RXNORM: "2.16.840.1.113883.6.88",
    HCPCS: "2.16.840.1.113883.6.285",
    NUCC: "2.16.840.1.113883.6.101",
    ICD10PCS: "2.16.840.1.113883.6.4",
    CPT: "2.16.840.1.113883.6.12",
    NDC: "2.16.840.1.113883.6.69",
}


def flipped_scheme(system: str) -> str:
    if system.startswith("https://"):
        return "http://" + system[8:]
    return system.replace("http://", "https://", 1)


def spellings(system: str) -> list[str | None]:
    """``system`` as it is found on the wire: as registered, with a trailing slash, the
    other scheme, upper case, as an OID with and without ``urn:oid:``; a local or unknown
    system, an empty one, or none at all (None: the Coding has no system)."""
    found: list[str | None] = [system, system + "/", flipped_scheme(system), system.upper()]
    if system in OIDS:
        found += [f"urn:oid:{OIDS[system]}", OIDS[system]]
    return [*found, "http://example.org/local-codes", "", None]


def full_width(text: str) -> str:
    """``text`` in full-width forms (U+FF01..U+FF5E), as some East Asian systems write."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def disguises(term: str, case_sensitive: bool) -> list[str]:
    """``term`` as free text may write it: title or upper case, full-width, its spaces
    as hyphens, a line break or a double space, a letter as an HTML character reference
    (a narrative), a soft hyphen inside the first word. A case-sensitive term keeps its
    case."""
    found = [term, full_width(term), term.replace(" ", "-"), term.replace(" ", "\n"),
             term.replace(" ", "  "), f"&#{ord(term[0])};{term[1:]}"]  # fmt: skip
    if len(term) > 1:
        found.append(f"{term[0]}\u00ad{term[1:]}")
    if not case_sensitive:
        found += [term.upper(), term.title()]
    return found
