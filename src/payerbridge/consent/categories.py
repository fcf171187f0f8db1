"""Sensitive data categories: what a ``regular`` consent withholds, by label and by code.

Each :class:`SensitiveCategory` names a kind of data that U.S. federal or state law
protects beyond HIPAA, the ``meta.security`` labels that mark it (v3-ActCode
information-sensitivity codes, v3-Confidentiality) and the clinical codes that reveal
it when nobody labelled it: ICD code families by prefix, and exact SNOMED CT, RxNorm,
LOINC, CPT, HCPCS, NUCC taxonomy, place-of-service and service-type codes.

The categories are data, not code (``data/sensitive-code-sets.json``): deliberately
modest and reviewable defaults, versioned, which a plan's privacy officer extends with a
file of the same form (``PAYERBRIDGE_SENSITIVE_CODE_SETS``). An extension only adds:
codes to a category, or new categories; it never narrows what is withheld (ADR 0011).
The version and digest of the sets in force go on every disclosure decision's audit
event, so what was withheld can be explained afterwards. Code matching is lexical:
ICD prefixes stand for their whole family, other systems match exactly (no
terminology server, so no SNOMED or RxNorm hierarchy). A system is compared by what it
names, however it is spelled (``system_identity``: OIDs, http or https, a trailing
slash, case); a code of a system we do not know, or with none, is judged against every
set (fail closed).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payerbridge.errors import CodeSetError

__all__ = [
    "ACT_CODE",
    "CONFIDENTIALITY",
    "CPT",
    "CVX",
    "HCPCS",
    "ICD10CM",
    "ICD10PCS",
    "ICD9CM",
    "LOINC",
    "NDC",
    "NUCC",
    "PLACE_OF_SERVICE",
    "RXNORM",
    "SHIPPED_CODE_SETS",
    "SNOMED",
    "UCUM",
    "X12_SERVICE_TYPE",
    "CodeSetError",
    "CodeSets",
    "SensitiveCategory",
    "Term",
    "canonical_system",
    "code_sets_from",
    "extended",
    "ndc_forms",
    "normalize_code",
    "system_identity",
]

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
NDC = "http://hl7.org/fhir/sid/ndc"
CVX = "http://hl7.org/fhir/sid/cvx"
NUCC = "http://nucc.org/provider-taxonomy"
UCUM = "http://unitsofmeasure.org"
PLACE_OF_SERVICE = (
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
)
X12_SERVICE_TYPE = "https://x12.org/codes/service-type-codes"

# The code systems we recognise, by OID (HL7 OID registry, as the FHIR terminology
# registry lists them). WHO ICD-10 shares the chapter structure of every family used
# here, so its codes are read as ICD-10-CM; "HCPCS" without a level is read as both
# levels (level I is CPT).
_OIDS: Mapping[str, str] = {
    "2.16.840.1.113883.6.90": ICD10CM,
    "2.16.840.1.113883.6.3": ICD10CM,
    "2.16.840.1.113883.6.4": ICD10PCS,
    "2.16.840.1.113883.6.2": ICD9CM,
    "2.16.840.1.113883.6.103": ICD9CM,
    "2.16.840.1.113883.6.104": "http://hl7.org/fhir/sid/icd-9-cm/procedure",
    "2.16.840.1.113883.6.96": SNOMED,
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.88": RXNORM,
    "2.16.840.1.113883.6.12": CPT,
    "2.16.840.1.113883.6.285": HCPCS,
    "2.16.840.1.113883.6.14": HCPCS,
    "2.16.840.1.113883.6.69": NDC,
    "2.16.840.1.113883.12.292": CVX,
    "2.16.840.1.113883.6.101": NUCC,
    "2.16.840.1.113883.6.8": UCUM,
    "2.16.840.1.113883.5.4": ACT_CODE,
    "2.16.840.1.113883.5.25": CONFIDENTIALITY,
}
_REGISTERED = (
    ACT_CODE,
    CONFIDENTIALITY,
    ICD10CM,
    ICD10PCS,
    ICD9CM,
    SNOMED,
    RXNORM,
    LOINC,
    CPT,
    HCPCS,
    NDC,
    CVX,
    NUCC,
    UCUM,
    PLACE_OF_SERVICE,
    X12_SERVICE_TYPE,
)
# Other spellings of the same systems seen on the wire (after _uri_key).
_ALIASES = {"hl7.org/fhir/sid/icd-10": ICD10CM}
# Systems whose codes are compared without dots or spaces and in upper case (F10.20 =
# f1020), and those compared in upper case only; the others exactly (trimmed).
_DOTLESS = frozenset({ICD10CM, ICD10PCS, ICD9CM})
_UPPER = frozenset({CPT, HCPCS, NUCC, LOINC, X12_SERVICE_TYPE})
# The three 10-digit NDC layouts, by the length of each hyphenated part, and where the
# 11-digit (5-4-2) billing form pads each with a zero.
_NDC_LAYOUTS = {(4, 4, 2): 0, (5, 3, 2): 5, (5, 4, 1): 9, (4, 4): 0, (5, 3): 5}
_NDC_DIGITS = re.compile(r"^[0-9]+$")
# Families of code systems whose members we know carry no code of their own elsewhere:
# FHIR's and HL7 Terminology's own code systems (hl7.org/fhir/sid/ names external
# systems, so an unknown one there is not known), and IETF/ISO URNs.
_KNOWN_FAMILIES = ("terminology.hl7.org/codesystem/", "hl7.org/fhir/", "urn:ietf:", "urn:iso:")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


# Characters that render as nothing and would split a code or a word (soft hyphen,
# zero-width spaces and joiners, word joiner, byte-order mark).
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")


def _folded(text: str) -> str:
    """``text`` in Unicode NFKC without invisible characters (full-width ``Ｆ１１`` =
    ``F11``); ASCII is returned as it is, at no cost."""
    if text.isascii():
        return text
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def _uri_key(system: str) -> str:
    """A system URI as compared: trimmed, lower case, no scheme, no ``www.``, no
    trailing slash (``https://LOINC.org/`` = ``http://loinc.org``)."""
    key = _folded(system).strip().lower()
    for scheme in ("http://", "https://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
            break
    if key.startswith("www."):
        key = key[4:]
    return key.rstrip("/#")


_BY_KEY: Mapping[str, str] = {
    **{_uri_key(system): system for system in _REGISTERED},
    **_ALIASES,
}


@lru_cache(maxsize=4096)
def system_identity(system: str) -> tuple[str, bool]:
    """The code system ``system`` names, however it is spelled (an OID, with or without
    ``urn:oid:``, a registered URI in http or https, with a trailing slash, in any
    case): its registry URI and True, or for a system we do not know its normalised
    spelling and False. Codes of an unknown system are judged against every set."""
    key = _uri_key(system)
    oid = key[8:] if key.startswith("urn:oid:") else key
    if _OID.match(oid):
        known = _OIDS.get(oid)
        return (known, True) if known else (f"urn:oid:{oid}", False)
    known = _BY_KEY.get(key)
    if known is not None:
        return known, True
    if key.startswith("snomed.info/sct/"):  # an edition or version in the URI
        return SNOMED, True
    if key.startswith("hl7.org/fhir/sid/"):
        return key, False
    return key, key.startswith(_KNOWN_FAMILIES)


def canonical_system(system: str) -> str:
    """``system`` as compared: the registry URI of a system we know, else its
    normalised spelling."""
    return system_identity(system)[0]


def normalize_code(system: str, code: str) -> str:
    """A code as compared within ``system``: in Unicode NFKC (full-width digits and
    letters as ASCII) and trimmed; ICD codes without dots or spaces and in upper case
    (``F10.20`` = ``f1020``); CPT, HCPCS, LOINC and NUCC codes in upper case; an NDC as
    its 11 digits (``ndc_forms``)."""
    system = canonical_system(system)
    code = _folded(code).strip()
    if system == NDC:
        return ndc_forms(code)[0]
    if system in _DOTLESS:
        return code.replace(".", "").replace(" ", "").upper()
    if system in _UPPER:
        return code.upper()
    return code


def ndc_forms(code: str) -> tuple[str, ...]:
    """The 11-digit (5-4-2) forms an NDC may stand for, the likeliest first.

    Hyphens say where the zero goes (``61958-0701-1`` = ``61958070101``; a product code
    ``12496-1208`` = ``124961208``, the package left off). Ten digits without hyphens
    could be any of the three 10-digit layouts, so all three are returned (fail
    closed); eleven digits are the billing form already. Anything else is returned as
    written, without hyphens or spaces, in upper case."""
    compact = code.replace(" ", "")
    parts = compact.split("-")
    if len(parts) > 1 and all(_NDC_DIGITS.match(part) for part in parts):
        lengths = tuple(len(part) for part in parts)
        joined = "".join(parts)
        if lengths in ((5, 4, 2), (5, 4)):
            return (joined,)
        at = _NDC_LAYOUTS.get(lengths)
        if at is not None:
            return (f"{joined[:at]}0{joined[at:]}",)
        return (joined,)
    if len(compact) == 10 and _NDC_DIGITS.match(compact):
        return (f"0{compact}", f"{compact[:5]}0{compact[5:]}", f"{compact[:9]}0{compact[9:]}")
    return (compact.replace("-", "").upper(),)


@dataclass(frozen=True)
class SensitiveCategory:
    """One kind of sensitive data and how to recognize it."""

    name: str
    description: str
    legal_basis: str
    security_labels: frozenset[tuple[str, str]]  # (system, code) in meta.security
    codes: frozenset[tuple[str, str]] = frozenset()  # exact (system, code)
    code_prefixes: frozenset[tuple[str, str]] = frozenset()  # (system, normalized prefix)
    # Words and phrases that reveal the category in free text (``consent.terms``).
    terms: frozenset[Term] = frozenset()

    def __post_init__(self) -> None:
        # Normalize once so that configuration may spell systems and ICD codes either way.
        object.__setattr__(self, "codes", _normalized(self.codes))
        object.__setattr__(self, "code_prefixes", _normalized(self.code_prefixes))
        object.__setattr__(self, "terms", frozenset(term.normalized() for term in self.terms))
        object.__setattr__(
            self,
            "security_labels",
            frozenset((canonical_system(s), c.strip()) for s, c in self.security_labels),
        )


@dataclass(frozen=True)
class Term:
    """A word or phrase that reveals a category in free text, matched as whole words
    after normalisation (NFKC, case folded, spacing and hyphens collapsed); with
    ``case_sensitive`` it matches only as written (``AIDS``, not ``aids``), and not
    right after any of ``unless_after`` (``hearing AIDS``)."""

    text: str
    case_sensitive: bool = False
    unless_after: tuple[str, ...] = ()

    def normalized(self) -> Term:
        text = " ".join(_folded(self.text).replace("-", " ").split())
        return Term(
            text if self.case_sensitive else text.casefold(),
            self.case_sensitive,
            tuple(sorted({" ".join(_folded(w).casefold().split()) for w in self.unless_after})),
        )


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
                sorted([t.text, t.case_sensitive, list(t.unless_after)] for t in category.terms),
            ]
            for category in sorted(self.categories, key=lambda c: c.name)
        ]
        encoded = json.dumps(canonical, separators=(",", ":")).encode()
        object.__setattr__(self, "digest", hashlib.sha256(encoded).hexdigest())

    @property
    def label(self) -> str:
        """What the audit trail records: ``version sha256:<first 16 hex digits>``."""
        return f"{self.version} sha256:{self.digest[:16]}"


class _Coded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None
    source: str | None = None  # a key of the document's sources: where the code comes from


class _Term(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    term: str = Field(min_length=2, max_length=80, pattern=r"[^\W_]")
    case_sensitive: bool = False
    unless_after: list[str] = []
    source: str | None = None


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str | None = None
    legal_basis: str | None = None
    security_labels: list[_Coded] = []
    codes: list[_Coded] = []
    code_prefixes: list[_Coded] = []
    terms: list[_Term] = []


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    description: str | None = None
    # The public lists codes were taken from, by a short key the codes name (not hashed).
    sources: dict[str, str] = {}
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
    for i, category in enumerate(parsed.categories):
        for kind in ("security_labels", "codes", "code_prefixes", "terms"):
            for j, coded in enumerate(getattr(category, kind)):
                if coded.source is not None and coded.source not in parsed.sources:
                    raise CodeSetError(
                        f"categories.{i}.{kind}.{j}.source: {coded.source[:64]!r} is not "
                        "a key of sources"
                    )
    return parsed


def _pairs(coded: Iterable[_Coded]) -> frozenset[tuple[str, str]]:
    return frozenset((c.system, c.code) for c in coded)


def _terms(entries: Iterable[_Term]) -> frozenset[Term]:
    return frozenset(Term(t.term, t.case_sensitive, tuple(t.unless_after)) for t in entries)


def _category(entry: _Category, *, base: SensitiveCategory | None = None) -> SensitiveCategory:
    labels, codes, prefixes, terms = (
        _pairs(entry.security_labels),
        _pairs(entry.codes),
        _pairs(entry.code_prefixes),
        _terms(entry.terms),
    )
    if base is not None:
        return SensitiveCategory(
            name=base.name,
            description=base.description,
            legal_basis=base.legal_basis,
            security_labels=base.security_labels | labels,
            codes=base.codes | codes,
            code_prefixes=base.code_prefixes | prefixes,
            terms=base.terms | terms,
        )
    if not entry.description or not entry.legal_basis:
        raise CodeSetError(
            f"category {entry.name}: a new category needs a description and a legal_basis"
        )
    if not (labels or codes or prefixes or terms):
        raise CodeSetError(
            f"category {entry.name}: names no security label, code, code prefix or term"
        )
    return SensitiveCategory(
        name=entry.name,
        description=entry.description,
        legal_basis=entry.legal_basis,
        security_labels=labels,
        codes=codes,
        code_prefixes=prefixes,
        terms=terms,
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
