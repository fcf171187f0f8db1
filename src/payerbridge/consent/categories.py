"""Sensitive data categories: what a ``regular`` consent withholds, by label and by code.

Each :class:`SensitiveCategory` names a kind of data that U.S. federal or state law
protects beyond HIPAA, the ``meta.security`` labels that mark it (v3-ActCode
information-sensitivity codes, v3-Confidentiality) and the clinical codes that reveal
it when nobody labelled it: ICD-10-CM code families by prefix, and exact SNOMED CT,
RxNorm, LOINC, CPT and HCPCS codes.

The defaults are deliberately modest and reviewable: well-known code families and a
few landmark drugs and tests, not the full SAMHSA C2S / VSAC value sets. A plan's
privacy officer extends them through configuration (``SegmentationPolicy``). Code
matching is lexical: ICD-10 prefixes stand for their whole family, other systems
match exactly (no terminology server, so no SNOMED or RxNorm hierarchy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ACT_CODE",
    "CONFIDENTIALITY",
    "CPT",
    "DEFAULT_CATEGORIES",
    "HCPCS",
    "ICD10CM",
    "LOINC",
    "RXNORM",
    "SNOMED",
    "SensitiveCategory",
    "canonical_system",
    "normalize_code",
]

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"

# Other spellings of the same code systems seen on the wire. WHO ICD-10 shares the
# chapter structure of every family used here, so its codes are read as ICD-10-CM.
_SYSTEM_ALIASES = {
    "http://hl7.org/fhir/sid/icd-10": ICD10CM,
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": HCPCS,
}


def canonical_system(system: str) -> str:
    return _SYSTEM_ALIASES.get(system, system)


def normalize_code(system: str, code: str) -> str:
    """ICD-10 codes compare without the dot and in upper case (``F10.20`` = ``f1020``)."""
    code = code.strip()
    if canonical_system(system) == ICD10CM:
        return code.replace(".", "").upper()
    return code


@dataclass(frozen=True)
class SensitiveCategory:
    """One kind of sensitive data and how to recognize it."""

    name: str
    description: str
    legal_basis: str
    security_labels: frozenset[tuple[str, str]]  # (system, code) in meta.security
    codes: frozenset[tuple[str, str]] = frozenset()  # exact (system, code)
    code_prefixes: frozenset[tuple[str, str]] = frozenset()  # (system, normalized prefix)

    def __post_init__(self) -> None:
        # Normalize once so that configuration may spell systems and ICD codes either way.
        object.__setattr__(self, "codes", _normalized(self.codes))
        object.__setattr__(self, "code_prefixes", _normalized(self.code_prefixes))


def _normalized(pairs: frozenset[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset(
        (canonical_system(system), normalize_code(system, code)) for system, code in pairs
    )


def _labels(*codes: str, system: str = ACT_CODE) -> frozenset[tuple[str, str]]:
    return frozenset((system, code) for code in codes)


def _of(system: str, codes: Iterable[str]) -> frozenset[tuple[str, str]]:
    return frozenset((system, code) for code in codes)


def _icd_block(letter: str, first: int, last: int, *, skip: Iterable[int] = ()) -> list[str]:
    """ICD-10 three-character categories ``letter+first`` .. ``letter+last``, e.g. F20..F48."""
    skipped = set(skip)
    return [f"{letter}{n:02d}" for n in range(first, last + 1) if n not in skipped]


SUBSTANCE_USE = SensitiveCategory(
    name="substance-use",
    description="Substance use disorder diagnosis, treatment and referral records",
    legal_basis="42 CFR Part 2 (alcohol and drug use; tobacco and caffeine are excluded)",
    security_labels=_labels("ETH", "SUD", "ETHUD", "OPIOIDUD", "42CFRPart2"),
    code_prefixes=_of(
        ICD10CM,
        # F17 (nicotine dependence) is not covered by Part 2.
        [*_icd_block("F", 10, 19, skip=[17]), "Z71.41", "Z71.51"],
    ),
    codes=_of(SNOMED, ["66590003", "7200002", "75544000", "5602001"])
    | _of(
        RXNORM,
        [
            "1819",  # buprenorphine
            "6813",  # methadone
            "7243",  # naltrexone
            "3554",  # disulfiram
            "1010604",  # buprenorphine 8 MG / naloxone 2 MG Sublingual Film
            "1483744",  # naltrexone hydrochloride 50 MG Oral Tablet
        ],
    )
    | _of(HCPCS, ["H0001", "H0005", "H0020"]),
)

HIV = SensitiveCategory(
    name="hiv",
    description="HIV infection, exposure, testing and antiretroviral treatment",
    legal_basis="State HIV confidentiality statutes (e.g. New York Public Health Law art. 27-F)",
    security_labels=_labels("HIV"),
    code_prefixes=_of(ICD10CM, ["B20", "Z21", "B97.35", "R75", "Z20.6", "Z71.7", "O98.7"]),
    codes=_of(SNOMED, ["86406008", "165816005"])
    | _of(
        RXNORM,
        [
            "11413",  # zidovudine
            "195085",  # efavirenz
            "276237",  # emtricitabine
            "719872",  # raltegravir
            "1433868",  # dolutegravir
            "1999667",  # bictegravir / emtricitabine / tenofovir alafenamide Oral Tablet
        ],
    )
    | _of(LOINC, ["56888-1", "75622-1"])
    | _of(CPT, ["86701", "86702", "86703", "87389"]),
)

SEXUALLY_TRANSMITTED = SensitiveCategory(
    name="sexually-transmitted-infection",
    description="Sexually transmitted infections, their testing and exposure",
    legal_basis="State minor-consent and communicable-disease confidentiality laws",
    security_labels=_labels("STD"),
    code_prefixes=_of(ICD10CM, [*_icd_block("A", 50, 64), "Z20.2", "Z11.3"]),
    codes=_of(SNOMED, ["8098009", "15628003", "76272004"]),
)

BEHAVIORAL_HEALTH = SensitiveCategory(
    name="behavioral-health",
    description="Mental and behavioral health conditions, psychotherapy and psychiatric drugs",
    legal_basis="State mental-health confidentiality laws; HIPAA psychotherapy notes",
    security_labels=_labels("PSY", "BH", "MH", "PSYTHPN"),
    code_prefixes=_of(ICD10CM, [*_icd_block("F", 20, 48), *_icd_block("F", 60, 69), "R45.851"]),
    codes=_of(SNOMED, ["35489007", "370143000", "58214004", "13746004", "197480006", "47505003"])
    | _of(
        RXNORM,
        [
            "36437",  # sertraline
            "312938",  # sertraline 50 MG Oral Tablet
            "4493",  # fluoxetine
            "6448",  # lithium
            "2626",  # clozapine
            "51272",  # quetiapine
            "35636",  # risperidone
            "61381",  # olanzapine
            "89013",  # aripiprazole
        ],
    )
    | _of(CPT, ["90791", "90792", "90832", "90834", "90837", "90847", "90853"]),
)

REPRODUCTIVE_HEALTH = SensitiveCategory(
    name="reproductive-health",
    description="Contraception, fertility care and pregnancy termination",
    legal_basis="State reproductive-health and minor-consent privacy laws",
    security_labels=_labels("SEX"),
    code_prefixes=_of(ICD10CM, ["Z30", "Z31", "Z33.2", *_icd_block("O", 0, 8)]),
    codes=_of(
        RXNORM,
        [
            "20210",  # mifepristone
            "748879",  # Levora 0.15/30 28 Day Pack
        ],
    )
    | _of(CPT, ["58300", "59840", "59841"]),
)

GENETIC = SensitiveCategory(
    name="genetic",
    description="Genetic test results, carrier status and genetic susceptibility",
    legal_basis="GINA and state genetic privacy laws",
    security_labels=_labels("GDIS"),
    code_prefixes=_of(ICD10CM, ["Z14", "Z15"]),
)

VIOLENCE = SensitiveCategory(
    name="sexual-and-domestic-violence",
    description="Sexual assault, abuse and domestic violence",
    legal_basis="State victim-confidentiality and domestic-violence laws",
    security_labels=_labels("SDV"),
    code_prefixes=_of(ICD10CM, ["T74", "T76", "Y07", "Z04.4", "Z91.41"]),
)

RESTRICTED = SensitiveCategory(
    name="restricted",
    description="Data its source marked restricted or very restricted",
    legal_basis="The source's confidentiality label (HL7 v3-Confidentiality R, V)",
    security_labels=_labels("R", "V", system=CONFIDENTIALITY),
)

DEFAULT_CATEGORIES: tuple[SensitiveCategory, ...] = (
    SUBSTANCE_USE,
    HIV,
    SEXUALLY_TRANSMITTED,
    BEHAVIORAL_HEALTH,
    REPRODUCTIVE_HEALTH,
    GENETIC,
    VIOLENCE,
    RESTRICTED,
)
