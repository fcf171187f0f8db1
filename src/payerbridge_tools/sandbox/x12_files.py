"""X12 5010 files of a sandbox payer's population, as its eligibility and claims systems
would write them (pure: text from the population's members and claims).

- ``enrollment_834``: one 834 (005010X220A1) of every member, household by household:
  the subscriber's INS loop then the dependents', each with the subscriber id (REF*0F),
  the group (REF*1L), the member's own id (2100A NM109, qualifier ZZ), name, address,
  phone, birth date, gender and the health coverage (HD) from their coverage start.
- ``claims_837``: 837Ps (005010X222A1) of the office and urgent care claims, 837Is
  (005010X223A2) of the emergency visits, each member sent as the subscriber of their
  own claims (every member has an own member id: no 2000C loop), one billing provider
  loop per provider organization.

Both are valid for pyx12's maps (the reader refuses what pyx12 refuses). X12 allows no
letters outside its character set: names are written without their accents, upper
case, as eligibility systems write them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

__all__ = ["Claim", "Enrollee", "Interchange", "Provider", "claims_837", "enrollment_834"]

_SEPARATORS = re.compile(r"[*~:^]")


@dataclass(frozen=True)
class Interchange:
    """Who sends to whom, when, under which control number."""

    sender: str
    receiver: str
    when: date
    control: int


@dataclass(frozen=True)
class Enrollee:
    """One member as the eligibility system holds them."""

    member_id: str
    subscriber_id: str
    relationship: str  # FHIR subscriber-relationship: self, spouse, child
    given: tuple[str, ...]
    family: str
    suffix: str
    gender: str
    birth_date: date
    lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    phone: str
    phone_use: str  # home, mobile
    group: str
    plan: str
    coverage_start: date
    is_medicare: bool
    coverage_level: str  # HD05: IND, FAM


@dataclass(frozen=True)
class Provider:
    npi: str
    name: str
    tax_id: str


@dataclass(frozen=True)
class Claim:
    """One claim of a member: the visit's provider, diagnoses (ICD-10-CM) and services
    (CPT), all on the day of service."""

    claim_id: str
    enrollee: Enrollee
    billing: Provider
    attending: tuple[str, str, str] | None  # (family, given, NPI): 837I only
    institutional: bool
    place_of_service: str
    serviced: date
    diagnoses: tuple[str, ...]
    services: tuple[str, ...]


def enrollment_834(
    envelope: Interchange,
    sponsor: tuple[str, str],
    payer: tuple[str, str],
    enrollees: list[Enrollee],
) -> str:
    """The 834 of ``enrollees`` (a household's members together, subscriber first);
    ``sponsor`` and ``payer`` as (name, FEIN)."""
    body = [
        f"BGN*00*{envelope.control:09d}*{_d8(envelope.when)}*1200****2",
        f"N1*P5*{_text(sponsor[0])}*FI*{sponsor[1]}",
        f"N1*IN*{_text(payer[0])}*FI*{payer[1]}",
    ]
    for enrollee in enrollees:
        body += _member_loop(enrollee)
    return _interchange(envelope, "BE", "834", "005010X220A1", [body])


def _member_loop(e: Enrollee) -> list[str]:
    subscriber = e.relationship == "self"
    relationship = {"self": "18", "spouse": "01"}.get(e.relationship, "19")
    given, middle = e.given[0], " ".join(e.given[1:])
    use = "CP" if e.phone_use == "mobile" else "HP"
    segments = [
        f"INS*{'Y' if subscriber else 'N'}*{relationship}*021*28*A***{'FT' if subscriber else ''}",
        f"REF*0F*{e.subscriber_id}",
        f"REF*1L*{e.group}",
        f"DTP*356*D8*{_d8(e.coverage_start)}",
        f"NM1*IL*1*{_text(e.family)}*{_text(given)}*{_text(middle)}**{_text(e.suffix)}*ZZ*{e.member_id}",
        f"PER*IP**{use}*{_digits(e.phone)}",
        f"N3*{'*'.join(_text(line) for line in e.lines[:2])}",
        f"N4*{_text(e.city)}*{e.state}*{e.postal_code}",
        f"DMG*D8*{_d8(e.birth_date)}*{_gender(e.gender)}",
        f"HD*021**HLT*{_text(e.plan)}*{e.coverage_level}",
        f"DTP*348*D8*{_d8(e.coverage_start)}",
    ]
    return [_trimmed(s) for s in segments]


def claims_837(
    envelope: Interchange,
    submitter: tuple[str, str],
    payer: tuple[str, str],
    claims: Iterable[Claim],
    *,
    institutional: bool,
) -> str:
    """The 837P (or, ``institutional``, 837I) of ``claims``; ``submitter`` and ``payer``
    as (name, id). One transaction set, a billing provider loop per provider, a
    subscriber loop per member under it."""
    header = [
        f"BHT*0019*00*{envelope.control:09d}*{_d8(envelope.when)}*1200*CH",
        f"NM1*41*2*{_text(submitter[0])}*****46*{submitter[1]}",
        "PER*IC*CLAIMS DESK*TE*5555550100",
        f"NM1*40*2*{_text(payer[0])}*****46*{payer[1]}",
    ]
    by_provider: dict[str, list[Claim]] = {}
    for claim in claims:
        by_provider.setdefault(claim.billing.npi, []).append(claim)
    body, hl = list(header), 0
    for npi in sorted(by_provider):
        hl += 1
        provider_hl = hl
        billing = by_provider[npi][0].billing
        body += [
            f"HL*{provider_hl}**20*1",
            *(["PRV*BI*PXC*282N00000X"] if institutional else []),
            f"NM1*85*2*{_text(billing.name)}*****XX*{billing.npi}",
            "N3*1 HEALTH CENTER DR",
            "N4*PORTLAND*ME*041010000",
            f"REF*EI*{billing.tax_id}",
        ]
        by_member: dict[str, list[Claim]] = {}
        for claim in by_provider[npi]:
            by_member.setdefault(claim.enrollee.member_id, []).append(claim)
        for member_claims in by_member.values():
            hl += 1
            body += _subscriber_loop(hl, provider_hl, member_claims[0].enrollee, payer)
            for claim in member_claims:
                body += _institutional(claim) if institutional else _professional(claim)
    version = "005010X223A2" if institutional else "005010X222A1"
    return _interchange(envelope, "HC", "837", version, [body])


def _subscriber_loop(hl: int, parent: int, e: Enrollee, payer: tuple[str, str]) -> list[str]:
    given, middle = e.given[0], " ".join(e.given[1:])
    filing = "16" if e.is_medicare else "CI"
    return [
        _trimmed(s)
        for s in (
            f"HL*{hl}*{parent}*22*0",
            f"SBR*P*18*{e.group}******{filing}",
            f"NM1*IL*1*{_text(e.family)}*{_text(given)}*{_text(middle)}**{_text(e.suffix)}*MI*{e.member_id}",
            f"N3*{'*'.join(_text(line) for line in e.lines[:2])}",
            f"N4*{_text(e.city)}*{e.state}*{e.postal_code}",
            f"DMG*D8*{_d8(e.birth_date)}*{_gender(e.gender)}",
            f"NM1*PR*2*{_text(payer[0])}*****PI*{payer[1]}",
        )
    ]


def _diagnoses(claim: Claim, principal: str, other: str, *, institutional: bool) -> list[str]:
    """The claim's HI segments. An 837P (X222) sends every diagnosis in one HI, the
    principal first (HI01 ABK, then ABF up to HI12). An 837I (X223) does not: its
    Principal Diagnosis HI has HI01 alone (HI02 on is "not used"), and the others go in
    an Other Diagnosis Information HI of their own (ABF, up to twelve)."""
    codes = [code.replace(".", "") for code in claim.diagnoses[:12]]
    if not codes:
        return []
    if institutional:
        first = [f"HI*{principal}:{codes[0]}"]
        return first + (
            ["HI*" + "*".join(f"{other}:{code}" for code in codes[1:])] if codes[1:] else []
        )
    return [
        "HI*" + "*".join(f"{principal if n == 0 else other}:{code}" for n, code in enumerate(codes))
    ]


def _professional(claim: Claim) -> list[str]:
    charge = 100 * len(claim.services)
    segments = [
        f"CLM*{claim.claim_id}*{charge}***{claim.place_of_service}:B:1*Y*A*Y*Y",
        *_diagnoses(claim, "ABK", "ABF", institutional=False),
    ]
    for number, service in enumerate(claim.services, 1):
        segments += [
            f"LX*{number}",
            f"SV1*HC:{service}*100*UN*1***1",
            f"DTP*472*D8*{_d8(claim.serviced)}",
        ]
    return segments


def _institutional(claim: Claim) -> list[str]:
    charge = 400 * len(claim.services)
    day = _d8(claim.serviced)
    segments = [
        f"CLM*{claim.claim_id}*{charge}***13:A:1**A*Y*Y",
        f"DTP*434*RD8*{day}-{day}",
        "CL1*1**01",
        *_diagnoses(claim, "ABK", "ABF", institutional=True),
    ]
    if claim.attending is not None:
        family, given, npi = claim.attending
        segments.append(f"NM1*71*1*{_text(family)}*{_text(given)}****XX*{npi}")
    for number, service in enumerate(claim.services, 1):
        segments += [
            f"LX*{number}",
            f"SV2*0450*HC:{service}*400*UN*1",
            f"DTP*472*D8*{day}",
        ]
    return segments


def _interchange(
    envelope: Interchange, group: str, transaction: str, version: str, sets: list[list[str]]
) -> str:
    isa = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{envelope.sender:<15}*ZZ*{envelope.receiver:<15}*"
        f"{envelope.when:%y%m%d}*1200*^*00501*{envelope.control:09d}*0*T*:"
    )
    segments = [
        isa,
        f"GS*{group}*{envelope.sender}*{envelope.receiver}*{_d8(envelope.when)}*1200*"
        f"{envelope.control}*X*{version}",
    ]
    for number, body in enumerate(sets, 1):
        segments.append(f"ST*{transaction}*{number:04d}*{version}")
        segments += body
        segments.append(f"SE*{len(body) + 2}*{number:04d}")
    segments += [f"GE*{len(sets)}*{envelope.control}", f"IEA*1*{envelope.control:09d}"]
    return "".join(f"{segment}~\n" for segment in segments)


def _text(value: str) -> str:
    """A name or address as X12 carries it: ASCII, upper case, no separators."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return _SEPARATORS.sub(" ", ascii_text).upper().strip()


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-10:]


def _gender(gender: str) -> str:
    return {"female": "F", "male": "M"}.get(gender, "U")


def _d8(day: date) -> str:
    return day.strftime("%Y%m%d")


def _trimmed(segment: str) -> str:
    """Without trailing empty elements, as X12 requires."""
    return segment.rstrip("*")
