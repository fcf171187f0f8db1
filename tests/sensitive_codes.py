"""Sensitive codes and the ways real systems spell their code systems, for the generated
tests of recognition (unit) and of leaks through HTTP (e2e). The OIDs are written here by
hand, from the FHIR terminology registry, so that a wrong one in the product is caught."""

from __future__ import annotations

from payerbridge.consent.categories import (
    HCPCS,
    ICD10CM,
    LOINC,
    NUCC,
    RXNORM,
    SHIPPED_CODE_SETS,
    SNOMED,
)

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
