"""The FHIR R4 shapes the sandbox writes: code systems, references, concepts and dates.

Resources are plain JSON-ready dicts (no FHIR library), so these helpers build
the small pieces every resource repeats. Dates are proleptic ordinals
(``date.toordinal()``) until they are written.
"""

from __future__ import annotations

from datetime import date

Resource = dict[str, object]
"""One FHIR R4 resource as JSON-ready dicts, lists, strings and numbers."""

Code = tuple[str, str]  # (code, display)

# --- code systems -------------------------------------------------------------

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
V2_0203 = TERMINOLOGY + "v2-0203"
HREX_TEMP = "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp"
ACT_CODE = TERMINOLOGY + "v3-ActCode"
CONFIDENTIALITY = TERMINOLOGY + "v3-Confidentiality"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
SOPT = "https://nahdo.org/sopt"
UMB = ("UMB", "Unique Product-independent Payer Person Identifier")
PRIOR_AUTH_PROFILE = (
    "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
)

# --- FHIR shapes --------------------------------------------------------------


def ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def concept(system: str, code: Code) -> dict[str, object]:
    return {"coding": [{"system": system, "code": code[0], "display": code[1]}]}


def hl7_concept(system: str, code: str) -> dict[str, object]:
    return {"coding": [{"system": TERMINOLOGY + system, "code": code}]}


def npi_identifier(npi: str) -> list[dict[str, str]]:
    return [{"system": NPI_SYSTEM, "value": npi}]


def mb_type() -> dict[str, object]:
    return {"coding": [{"system": V2_0203, "code": "MB", "display": "Member Number"}]}


def iso_day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def stamp(ordinal: int, minute: int, offset: str) -> str:
    """Local date-time ``minute`` minutes after midnight of ``ordinal`` (may roll over)."""
    days, minute = divmod(minute, 1440)
    hour, minute = divmod(minute, 60)
    return f"{date.fromordinal(ordinal + days).isoformat()}T{hour:02d}:{minute:02d}:00{offset}"
