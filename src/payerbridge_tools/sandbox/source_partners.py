"""The sandbox partners whose history comes from a plan's own systems, not from FHIR
loaded into payerbridge: what they are given (files, a sources file), deterministic by
seed from the same synthetic population as the other partners.

- An **X12/CSV partner** (``write_x12_partner``): its eligibility system's 834, its
  claims platform's 837P and 837I, its clinical extract's conditions (CSV) and its
  laboratory extract (fixed-width), each a replicated source of its ``sources.toml``
  with the mapping that reads it. Ingested with ``payerbridge sources ingest``, the 834
  feeds its identity index: it holds no FHIR of its own.
- A **FHIR-server partner** (``fhir_server_sources``): its clinical history in the
  plan's FHIR server (``payerbridge sandbox fhir-source``, serving the same payer's
  population with its quirks), a live source asked at request time with a SMART
  Backend Services client; ``payerbridge sources sync`` reads its roster.

Sensitive care (the resources the population labels) is left out of the files: X12
and the extracts have no place for the labels that withhold it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from payerbridge_tools.population import Network, PayerProfile, sample_switchers
from payerbridge_tools.population.chart import Chart
from payerbridge_tools.population.households import Household, Member, stream_households
from payerbridge_tools.population.network import payer_context
from payerbridge_tools.population.providers import directory
from payerbridge_tools.sandbox.quirks import LOCAL_LAB_CODES, SERVED_TYPES
from payerbridge_tools.sandbox.x12_files import (
    Claim,
    Enrollee,
    Interchange,
    Provider,
    claims_837,
    enrollment_834,
)

__all__ = [
    "LIVE_SOURCE",
    "REPLICATED_SOURCES",
    "PartnerFiles",
    "fhir_server_sources",
    "fhir_server_switcher",
    "source_switcher",
    "write_x12_partner",
    "x12_slice",
]

Resource = dict[str, Any]

# (source id, mapping, file name, what it holds), in the order they are ingested.
REPLICATED_SOURCES = (
    ("enrollment", "x12-834-enrollment@1.1.0", "enrollment.834", "eligibility system (834)"),
    ("claims", "x12-837-eob@1.1.0", "professional.837", "claims platform (837P)"),
    ("claims", "x12-837-eob@1.1.0", "institutional.837", "claims platform (837I)"),
    ("conditions", "csv-conditions@1.0.0", "conditions.csv", "clinical extract (CSV)"),
    ("labs", "fixed-width-labs@1.0.0", "labs.txt", "laboratory extract (fixed-width)"),
)
LIVE_SOURCE = "clinical"
# What the FHIR-server partner asks its server for (all it serves but the roster's own).
LIVE_TYPES = tuple(t for t in SERVED_TYPES if t != "Patient")
_PROBLEM_CODES = {
    "E11.9": "DM2",
    "I10": "HTN",
    "J45.909": "ASTH",
    "E78.5": "HLD",
    "F32.9": "DEP",
    "F11.20": "OUD",
}
_LAB_CODES = {loinc: local for loinc, (local, _) in LOCAL_LAB_CODES.items()}
_DATE_FORMS = ("%Y%m%d", "%m/%d/%Y", "%d-%b-%Y", "%Y-%m-%d")


@dataclass
class PartnerFiles:
    """What ``write_x12_partner`` wrote: each file with the source it is ingested into."""

    directory: Path
    sources_file: Path
    files: list[tuple[str, Path]] = field(default_factory=list)
    members: int = 0
    claims: int = 0


def write_x12_partner(
    out_dir: Path, network: Network, payer: PayerProfile, members: int, seed: int, as_of: date
) -> PartnerFiles:
    """Write the X12/CSV partner's files and its ``sources.toml`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    extract = _extract(network, payer, members, seed, as_of)
    envelope = Interchange(f"{payer.member_id_prefix}ELIG", payer.member_id_prefix, as_of, 1)
    fein = payer.npi[1:]
    texts = {
        "enrollment.834": enrollment_834(
            envelope, ("SANDBOX EMPLOYERS", "123456789"), (payer.name, fein), extract.enrollees
        ),
        "professional.837": claims_837(
            Interchange("SANDBOXCH", payer.member_id_prefix, as_of, 2),
            ("SANDBOX CLEARINGHOUSE", "SBXCH01"),
            (payer.name, payer.npi),
            [c for c in extract.claims if not c.institutional],
            institutional=False,
        ),
        "institutional.837": claims_837(
            Interchange("SANDBOXCH", payer.member_id_prefix, as_of, 3),
            ("SANDBOX CLEARINGHOUSE", "SBXCH01"),
            (payer.name, payer.npi),
            [c for c in extract.claims if c.institutional],
            institutional=True,
        ),
        "conditions.csv": _conditions_csv(extract.conditions),
        "labs.txt": _labs_fixed_width(extract.labs),
    }
    written = PartnerFiles(out_dir, out_dir / "sources.toml")
    for source_id, _mapping, name, _what in REPLICATED_SOURCES:
        path = out_dir / name
        _write(path, texts[name])
        written.files.append((source_id, path))
    _write(written.sources_file, _replicated_toml(payer))
    written.members = len(extract.enrollees)
    written.claims = len(extract.claims)
    return written


def x12_slice(
    network: Network, payer: PayerProfile, members: int, seed: int, as_of: date, control: int
) -> tuple[str, str, int, int]:
    """One slice of a payer's population as its systems write it, for a file built of
    many (``payerbridge bench ingest``): its 834 and its 837P, each one interchange under
    its own control number (``control`` and the next), and how many members and claims."""
    extract = _extract(network, payer, members, seed, as_of)
    fein = payer.npi[1:]
    enrollment = enrollment_834(
        Interchange(f"{payer.member_id_prefix}ELIG", payer.member_id_prefix, as_of, control),
        ("SANDBOX EMPLOYERS", "123456789"),
        (payer.name, fein),
        extract.enrollees,
    )
    claims = [c for c in extract.claims if not c.institutional]
    professional = claims_837(
        Interchange("SANDBOXCH", payer.member_id_prefix, as_of, control + 1),
        ("SANDBOX CLEARINGHOUSE", "SBXCH01"),
        (payer.name, payer.npi),
        claims,
        institutional=False,
    )
    return enrollment, professional, len(extract.enrollees), len(claims)


def fhir_server_sources(
    base_url: str, client_id: str, key_file: Path, *, budget_seconds: float = 3.0
) -> str:
    """The FHIR-server partner's ``sources.toml``: its plan's FHIR server, live."""
    types = ", ".join(f'"{t}"' for t in LIVE_TYPES)
    origin = base_url.rsplit("/fhir", 1)[0]
    return (
        "# The sandbox's FHIR-server partner: its clinical history is asked of the plan's\n"
        "# own FHIR server at request time (payerbridge sandbox fhir-source).\n"
        "[[source]]\n"
        f'id = "{LIVE_SOURCE}"\n'
        'mode = "live"\n'
        'kind = "fhir-server"\n'
        'mapping = "fhir-server-quirks@1.0.0"\n'
        f'base_url = "{base_url}"\n'
        f"types = [{types}]\n"
        f"budget_seconds = {budget_seconds}\n"
        'description = "the plan\'s Patient Access FHIR server, with its quirks"\n'
        "[source.auth]\n"
        f'client_id = "{client_id}"\n'
        f'key_file = "{key_file}"\n'
        f'token_url = "{origin}/auth/token"\n'
    )


def _replicated_toml(payer: PayerProfile) -> str:
    lines = [
        f"# {payer.name} (sandbox): its history only from its systems' files, each file",
        "# mapped by the mapping its source names (payerbridge sources ingest).",
    ]
    seen: set[str] = set()
    for source_id, mapping, _name, what in REPLICATED_SOURCES:
        if source_id in seen:
            continue
        seen.add(source_id)
        lines += [
            "[[source]]",
            f'id = "{source_id}"',
            'mode = "replicated"',
            f'mapping = "{mapping}"',
            f'description = "{what}"',
        ]
    return "\n".join(lines) + "\n"


@dataclass
class _Extract:
    enrollees: list[Enrollee] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    conditions: list[tuple[str, Resource]] = field(default_factory=list)
    labs: list[tuple[str, Resource]] = field(default_factory=list)


def _extract(
    network: Network, payer: PayerProfile, members: int, seed: int, as_of: date
) -> _Extract:
    """The population's members and histories, as the plan's systems hold them."""
    ctx = payer_context(network, payer, seed, as_of)
    providers: dict[str, Provider] = {}
    practitioners: dict[str, tuple[str, str, str]] = {}
    entry: Any
    for entry in directory(ctx):
        resource: Resource = entry
        npi = str(resource["identifier"][0]["value"])
        reference = f"{resource['resourceType']}/{resource['id']}"
        if resource["resourceType"] == "Organization":
            providers[reference] = Provider(npi, resource["name"], npi[1:])
        else:
            name = resource["name"][0]
            practitioners[reference] = (name["family"], name["given"][0], npi)
    extract = _Extract()
    for household in stream_households(ctx, members):
        for member in household.members:
            enrollee = _enrollee(household, member)
            extract.enrollees.append(enrollee)
            history = [r for r in Chart(ctx, household, member).build() if not _is_sensitive(r)]
            encounters = {
                f"Encounter/{r['id']}": r for r in history if r["resourceType"] == "Encounter"
            }
            for resource in history:
                kind = resource["resourceType"]
                if kind == "ExplanationOfBenefit" and resource.get("use") == "claim":
                    claim = _claim(resource, enrollee, encounters, providers, practitioners)
                    if claim is not None:
                        extract.claims.append(claim)
                elif kind == "Condition" and _code(resource) in _PROBLEM_CODES:
                    extract.conditions.append((member.member_id, resource))
                elif kind == "Observation" and _code(resource) in _LAB_CODES:
                    extract.labs.append((member.member_id, resource))
    return extract


def _enrollee(household: Household, member: Member) -> Enrollee:
    return Enrollee(
        member_id=member.member_id,
        subscriber_id=household.subscriber_id,
        relationship=member.relationship,
        given=member.given,
        family=member.family,
        suffix=member.suffix,
        gender=member.gender,
        birth_date=member.birth_date,
        lines=household.lines,
        city=household.place.city,
        state=household.place.state,
        postal_code=household.postal_code,
        phone=member.phone,
        phone_use=member.phone_use,
        group=household.group[0],
        plan=household.plan[1],
        coverage_start=member.coverage_start,
        is_medicare=household.is_medicare,
        coverage_level="FAM" if len(household.members) > 1 else "IND",
    )


def _claim(
    eob: Resource,
    enrollee: Enrollee,
    encounters: dict[str, Resource],
    providers: dict[str, Provider],
    practitioners: dict[str, tuple[str, str, str]],
) -> Claim | None:
    items = eob.get("item") or []
    services = tuple(item["productOrService"]["coding"][0]["code"] for item in items)
    if not services:
        return None
    encounter = encounters.get(items[0].get("encounter", [{}])[0].get("reference", ""), {})
    institutional = encounter.get("class", {}).get("code") == "EMER"
    participant = (encounter.get("participant") or [{}])[0].get("individual", {})
    billing = providers[eob["provider"]["reference"]]
    return Claim(
        claim_id=eob["identifier"][0]["value"],
        enrollee=enrollee,
        billing=billing,
        attending=practitioners.get(participant.get("reference", "")),
        institutional=institutional,
        place_of_service="20" if "URGENT" in billing.name.upper() else "11",
        serviced=date.fromisoformat(eob["billablePeriod"]["start"]),
        diagnoses=tuple(
            d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in eob.get("diagnosis", [])
        ),
        services=services,
    )


def _conditions_csv(rows: list[tuple[str, Resource]]) -> str:
    """The clinical extract: its dates in the forms such extracts mix."""
    lines = ["member_id,row_id,problem_code,onset_date,resolved_date,recorded_date"]
    for number, (member_id, condition) in enumerate(rows):
        form = _DATE_FORMS[number % len(_DATE_FORMS)]
        lines.append(
            ",".join(
                [
                    member_id,
                    condition["id"].upper(),
                    _PROBLEM_CODES[_code(condition)],
                    _day(condition.get("onsetDateTime"), form),
                    _day(condition.get("abatementDateTime"), form),
                    _day(condition.get("recordedDate"), "%Y-%m-%d"),
                ]
            )
        )
    return "\n".join(lines) + "\n"


def _labs_fixed_width(rows: list[tuple[str, Resource]]) -> str:
    """The laboratory extract, in the layout fixed-width-labs@1.0.0 reads."""
    lines = []
    for member_id, observation in rows:
        quantity = observation.get("valueQuantity") or {}
        result_id = "LAB-" + observation["id"].split("-obs-", 1)[-1]
        value = quantity.get("value")
        lines.append(
            f"{member_id:<12}{result_id[:20]:<20}{_LAB_CODES[_code(observation)]:<8}"
            f"{_day(observation.get('effectiveDateTime'), '%Y%m%d'):<8}"
            f"{'' if value is None else value:>10}{quantity.get('code', ''):<10}F"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _code(resource: Resource) -> str:
    return str(resource.get("code", {}).get("coding", [{}])[0].get("code", ""))


def _day(value: Any, form: str) -> str:
    if not isinstance(value, str) or len(value) < 10:
        return ""
    return date.fromisoformat(value[:10]).strftime(form)


def _is_sensitive(resource: Resource) -> bool:
    return bool((resource.get("meta") or {}).get("security"))


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="ascii" if path.suffix in (".834", ".837") else "utf-8")
    temporary.replace(path)


def source_switcher(
    network: Network, payer: PayerProfile, members: int, seed: int, as_of: date
) -> dict[str, Any]:
    """A member of ``payer``'s population (of ``members``) moving to the platform, with
    the request they make: demographics as the partner's systems hold them."""
    (switcher,) = sample_switchers(network, payer, members, seed, as_of, 1)
    return switcher


def fhir_server_switcher(
    network: Network, payer: PayerProfile, members: int, seed: int, as_of: date
) -> dict[str, Any]:
    """A member of the FHIR-server partner (its server serving ``payer``'s population)
    moving to the platform whose served records all map and meet their profiles, so
    that their exchange completes: the one with the most records among them (any member
    when none is: their exchange ends partial). The quirky server's members now and
    then have a record the profile check holds back, as it should."""
    from payerbridge.backends.mapping import MappingLibrary, MappingRef, RecordNotMapped
    from payerbridge.fhir.profiles import ProfileChecker
    from payerbridge_tools.sandbox.quirks import quirky_population

    mapping = MappingLibrary().get(MappingRef.parse("fhir-server-quirks@1.0.0"))
    checker = ProfileChecker.bundled()
    held: set[str] = set()
    served: dict[str, int] = {}
    index = network.payers.index(payer)
    for record in quirky_population(members, seed, as_of, payer=index, payers=len(network.payers)):
        member = _native_member(record)
        served[member] = served.get(member, 0) + 1
        try:
            produced = mapping.apply(record, source_id=LIVE_SOURCE, namespace="plan", member="m")
        except RecordNotMapped:
            held.add(member)
            continue
        stamp = {"versionId": "1", "lastUpdated": f"{as_of.isoformat()}T00:00:00Z"}
        if any(checker.check({**r, "meta": {**r["meta"], **stamp}}) for r in produced):
            held.add(member)
    switchers = sample_switchers(network, payer, members, seed, as_of, members)
    clean = [s for s in switchers if s["old_patient_id"] not in held]
    # The one with the most history among them: the exchange shows the source's records.
    return max(clean or switchers, key=lambda s: served.get(s["old_patient_id"], 0))


def _native_member(resource: Resource) -> str:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    for name in ("subject", "patient", "beneficiary"):
        reference = (resource.get(name) or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return ""
