"""Sensitive data categories: what a ``regular`` consent withholds, by label and by code.

Each :class:`SensitiveCategory` names a kind of data that U.S. federal or state law
protects beyond HIPAA, the ``meta.security`` labels that mark it (v3-ActCode
information-sensitivity codes, v3-Confidentiality) and the clinical codes that reveal
it when nobody labelled it: ICD-10-CM code families by prefix, and exact SNOMED CT,
RxNorm, LOINC, CPT and HCPCS codes.

The categories are data, not code (``data/sensitive-code-sets.json``): deliberately
modest and reviewable defaults, versioned, which a plan's privacy officer extends with a
file of the same form (``PAYERBRIDGE_SENSITIVE_CODE_SETS``). An extension only adds:
codes to a category, or new categories; it never narrows what is withheld (ADR 0011).
The version and digest of the sets in force go on every disclosure decision's audit
event, so what was withheld can be explained afterwards. Code matching is lexical:
ICD-10 prefixes stand for their whole family, other systems match exactly (no
terminology server, so no SNOMED or RxNorm hierarchy).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ACT_CODE",
    "CONFIDENTIALITY",
    "CPT",
    "HCPCS",
    "ICD10CM",
    "LOINC",
    "RXNORM",
    "SHIPPED_CODE_SETS",
    "SNOMED",
    "CodeSetError",
    "CodeSets",
    "SensitiveCategory",
    "canonical_system",
    "code_sets_from",
    "extended",
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


@dataclass(frozen=True)
class CodeSets:
    """The categories in force, under a version an operator names and a digest of what
    they match (two deployments with the same digest withhold the same data)."""

    version: str
    categories: tuple[SensitiveCategory, ...]
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        canonical = [
            [
                category.name,
                sorted(category.security_labels),
                sorted(category.codes),
                sorted(category.code_prefixes),
            ]
            for category in sorted(self.categories, key=lambda c: c.name)
        ]
        encoded = json.dumps(canonical, separators=(",", ":")).encode()
        object.__setattr__(self, "digest", hashlib.sha256(encoded).hexdigest())

    @property
    def label(self) -> str:
        """What the audit trail records: ``version sha256:<first 16 hex digits>``."""
        return f"{self.version} sha256:{self.digest[:16]}"


class CodeSetError(ValueError):
    """A code-set document that cannot be used, with where it is wrong."""


class _Coded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str | None = None
    legal_basis: str | None = None
    security_labels: list[_Coded] = []
    codes: list[_Coded] = []
    code_prefixes: list[_Coded] = []


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    description: str | None = None
    categories: list[_Category] = Field(min_length=1)


def _read(document: Any) -> _Document:
    try:
        parsed = _Document.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise CodeSetError(f"{where}: {first['msg']}") from None
    names = [category.name for category in parsed.categories]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CodeSetError(f"categories: {', '.join(repeated)} given more than once")
    return parsed


def _pairs(coded: Iterable[_Coded]) -> frozenset[tuple[str, str]]:
    return frozenset((c.system, c.code) for c in coded)


def _category(entry: _Category, *, base: SensitiveCategory | None = None) -> SensitiveCategory:
    labels, codes, prefixes = (
        _pairs(entry.security_labels),
        _pairs(entry.codes),
        _pairs(entry.code_prefixes),
    )
    if base is not None:
        return SensitiveCategory(
            name=base.name,
            description=base.description,
            legal_basis=base.legal_basis,
            security_labels=base.security_labels | labels,
            codes=base.codes | codes,
            code_prefixes=base.code_prefixes | prefixes,
        )
    if not entry.description or not entry.legal_basis:
        raise CodeSetError(
            f"category {entry.name}: a new category needs a description and a legal_basis"
        )
    if not (labels or codes or prefixes):
        raise CodeSetError(f"category {entry.name}: names no security label, code or code prefix")
    return SensitiveCategory(
        name=entry.name,
        description=entry.description,
        legal_basis=entry.legal_basis,
        security_labels=labels,
        codes=codes,
        code_prefixes=prefixes,
    )


def code_sets_from(document: Any) -> CodeSets:
    """A complete set of categories (the shipped file's form)."""
    parsed = _read(document)
    return CodeSets(parsed.version, tuple(_category(entry) for entry in parsed.categories))


def extended(base: CodeSets, document: Any) -> CodeSets:
    """``base`` with an operator's additions: codes and labels added to categories it
    names, new categories added whole. Its version is appended to the base's."""
    parsed = _read(document)
    by_name: dict[str, SensitiveCategory] = {c.name: c for c in base.categories}
    for entry in parsed.categories:
        known = by_name.get(entry.name)
        if known is not None and (
            entry.description not in (None, known.description)
            or entry.legal_basis not in (None, known.legal_basis)
        ):
            raise CodeSetError(
                f"category {entry.name}: an extension adds codes to a shipped category; "
                "it does not rewrite its description or legal_basis"
            )
        by_name[entry.name] = _category(entry, base=known)
    return CodeSets(f"{base.version}+{parsed.version}", tuple(by_name.values()))


def _shipped() -> CodeSets:
    text = files("payerbridge.consent").joinpath("data/sensitive-code-sets.json").read_text()
    document: Mapping[str, Any] = json.loads(text)
    return code_sets_from(document)


SHIPPED_CODE_SETS = _shipped()
