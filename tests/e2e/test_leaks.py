"""The generative leak test, over HTTP against one real old-payer process for the module.

Hypothesis writes members whose records carry sensitive facts in every code system the
shipped sets write each category in (ICD-10-CM and -PCS, SNOMED CT, RxNorm, NDC in a
pharmacy's layouts, LOINC, CPT, HCPCS, NUCC, place of service, X12), in every encoding
real systems use (a system as an OID, with or without ``urn:oid:``, in http or https,
with a trailing slash, in another case, unknown, or none; a code in another case,
padded, or a number), and in words alone (a shipped term, disguised, as ``code.text``, a
display without a code, a note, a ``valueString`` or the narrative), in every place FHIR
R4 allows a Coding (the main code, a category, an
extension at any depth or on a primitive, a modifierExtension, an Observation
component's value, a claim's ``supportingInfo``, an Encounter's ``serviceType``,
``meta.tag``, a contained resource), shared resources that are sensitive by themselves
(a PrEP Medication, an opioid treatment program by its type or only by its name, an
addiction specialist), a stay at the program, and
references from one member's records to another member's sensitive ones. Each fact
carries a marker display. Under a ``regular`` consent nothing marked, nothing that
depends on it and no reference to it may leave by any path: reads, searches with every
``_include`` and ``_revinclude``, ``$everything`` pages, bulk export; a payer without a
consent reads none of it, and a read it may not make looks exactly like a read of
nothing.

``make test`` runs a few batches (``PAYERBRIDGE_LEAK_EXAMPLES``, default 3, each batch
one to three members loaded at once); set it higher for a longer run by hand.
"""

from __future__ import annotations

import itertools
import os
import random
import string
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt

from payerbridge.consent.categories import (
    HCPCS,
    ICD10CM,
    LOINC,
    NDC,
    NUCC,
    PLACE_OF_SERVICE,
    RXNORM,
    SNOMED,
)
from payerbridge.disclosure.search import INCLUDES
from payerbridge.fhir.resources import iter_references
from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from tests.builders import a_coverage, a_patient, an_exchange_request, member_match_parameters
from tests.fhir_client import pages
from tests.sensitive_codes import SENSITIVE_CODES, SENSITIVE_TERMS, disguises, spellings
from tests.servers import (
    REQUESTER_SCOPES,
    ServerProcess,
    new_signing_key,
    public_jwk,
)

OLD_NPI, REGULAR_NPI, OTHER_NPI = "1245319599", "1234567893", "1200000101"
FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {"Prefer": "respond-async"}
MARK = "LEAKMARK"
EXAMPLES = int(os.environ.get("PAYERBRIDGE_LEAK_EXAMPLES", "3"))
SEARCHED = ("Condition", "Observation", "ExplanationOfBenefit", "Encounter", "Procedure",
            "MedicationRequest")  # fmt: skip

Resource = dict[str, Any]


# -- the payer, started once for the module


@dataclass
class Payer:
    server: ServerProcess
    platform: Any
    regular: str  # a token of the payer whose members consented under `regular`
    other: str  # a token of a registered payer no member consented to
    data_dir: Path
    loaded: int = 0
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


@pytest.fixture(scope="module")
def payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Payer]:
    base = tmp_path_factory.mktemp("leaks")
    env = {"PAYERBRIDGE_ORG_NAME": "Old Plan", "PAYERBRIDGE_ORG_NPI": OLD_NPI}
    server = module_server("old", env=env)
    regular = server.register_client("regular-payer", npi=REGULAR_NPI, scope=REQUESTER_SCOPES)
    other = server.register_client("other-payer", npi=OTHER_NPI, scope=REQUESTER_SCOPES)
    with server.platform() as platform:
        yield Payer(server, platform, regular, other, base)


# -- sensitive facts, spelled and placed the ways real systems write them


@st.composite
def codings(draw: st.DrawFn, pool: list[tuple[str, str]] = SENSITIVE_CODES) -> Resource:
    """A sensitive Coding as some system writes it, marked so its leaving can be seen."""
    system, code = draw(st.sampled_from(pool))
    if system == ICD10CM and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    if system == NDC and len(code) == 9:  # a product: a package of it, as dispensed
        package = draw(st.from_regex(r"\A[0-9]{2}\Z"))
        code = draw(st.sampled_from([f"{code[:5]}-{code[5:]}-{package}", code + package]))
    written_code: Any = draw(st.sampled_from([code, code.lower(), f" {code} "]))
    if code.isdigit() and not code.startswith("0") and draw(st.booleans()):
        written_code = int(code)  # some systems write numeric codes as numbers
    coding: Resource = {"code": written_code, "display": f"{MARK} {draw(st.uuids()).hex[:8]}"}
    written = draw(st.sampled_from(spellings(system)))
    if written is not None:
        coding["system"] = written
    return coding


def concept(coding: Resource) -> Resource:
    return {"coding": [{"system": LOINC, "code": "8867-4"}, coding]}


def _extension(coding: Resource, how: str) -> Resource:
    url = "http://example.org/fhir/StructureDefinition/note"
    if how == "valueCode":
        return {"url": url, "valueCode": coding["code"] if isinstance(coding["code"], str)
                else str(coding["code"]), "_valueCode": {"extension": [
                    {"url": url, "valueString": coding["display"]}]}}  # fmt: skip
    if how == "valueCoding":
        return {"url": url, "valueCoding": coding}
    if how == "nested":
        return {
            "url": url,
            "extension": [{"url": "inner", "valueCodeableConcept": concept(coding)}],
        }
    return {"url": url, "valueCodeableConcept": concept(coding)}


# Where a Coding may sit, per type: (name, a function adding it to the resource).
PLACES: dict[str, list[str]] = {
    "Condition": ["code", "category", "evidence.code"],
    "Observation": [
        "code",
        "valueCodeableConcept",
        "component.code",
        "component.value",
        "interpretation",
    ],  # fmt: skip
    "ExplanationOfBenefit": [
        "diagnosis",
        "item.productOrService",
        "supportingInfo.code",
        "item.locationCodeableConcept",
        "procedure",
    ],  # fmt: skip
    "Encounter": ["serviceType", "type", "reasonCode"],
    "Procedure": ["code", "reasonCode"],
    "MedicationRequest": ["medicationCodeableConcept", "reasonCode"],
}
ANYWHERE = ["extension", "modifierExtension", "primitive-extension", "meta.tag", "contained"]


def place(resource: Resource, where: str, coding: Resource, how: str) -> None:
    """Put ``coding`` at ``where`` in ``resource``."""
    cc = concept(coding)
    if where == "extension":
        resource.setdefault("extension", []).append(_extension(coding, how))
    elif where == "modifierExtension":
        resource.setdefault("modifierExtension", []).append(_extension(coding, how))
    elif where == "primitive-extension":
        resource["status"] = resource.get("status", "final")
        resource["_status"] = {"extension": [_extension(coding, how)]}
    elif where == "meta.tag":
        resource["meta"] = {"tag": [coding]}
    elif where == "contained":
        resource["contained"] = [{"resourceType": "Condition", "id": "why", "code": cc,
                                  "subject": resource.get("subject")}]  # fmt: skip
        resource.setdefault("extension", []).append(
            {"url": "http://example.org/why", "valueReference": {"reference": "#why"}}
        )
    elif where in ("code", "type", "serviceType", "valueCodeableConcept",
                   "medicationCodeableConcept", "item.locationCodeableConcept"):  # fmt: skip
        if where == "type":
            resource["type"] = [cc]
        elif where == "item.locationCodeableConcept":
            resource["item"] = [{"sequence": 1, "productOrService": {"text": "visit"},
                                 "locationCodeableConcept": cc}]  # fmt: skip
        else:
            resource[where] = cc
    elif where in ("category", "reasonCode", "interpretation"):
        resource[where] = [cc]
    elif where == "evidence.code":
        resource["evidence"] = [{"code": [cc]}]
    elif where == "component.code":
        resource["component"] = [{"code": cc, "valueQuantity": {"value": 1}}]
    elif where == "component.value":
        resource["component"] = [{"code": {"text": "result"}, "valueCodeableConcept": cc}]
    elif where == "diagnosis":
        resource["diagnosis"] = [{"sequence": 1, "diagnosisCodeableConcept": cc}]
    elif where == "item.productOrService":
        resource["item"] = [{"sequence": 1, "productOrService": cc}]
    elif where == "supportingInfo.code":
        resource["supportingInfo"] = [{"sequence": 1, "category": {"text": "info"}, "code": cc}]
    elif where == "procedure":
        resource["procedure"] = [{"sequence": 1, "procedureCodeableConcept": cc}]
    else:  # pragma: no cover - the strategies name only the places above
        raise AssertionError(where)


@dataclass(frozen=True)
class Fact:
    resource_type: str
    where: str
    how: str  # for extensions: valueCoding, valueCodeableConcept, valueCode, nested
    coding: Resource


# Where words alone may say it, per type (a Coding with a display and no code included).
WORDED: dict[str, list[str]] = {
    "Condition": ["code.text", "display", "note", "narrative"],
    "Observation": ["code.text", "display", "note", "valueString", "narrative"],
    "Procedure": ["code.text", "display", "note"],
    "MedicationRequest": ["display", "note"],
}


@st.composite
def words(draw: st.DrawFn) -> Resource:
    """A shipped term, disguised, beside the marker: as free text writes it."""
    term = draw(st.sampled_from(SENSITIVE_TERMS))
    return {"text": f"{MARK} {draw(st.sampled_from(disguises(*term)))}."}


def place_words(resource: Resource, where: str, text: str) -> None:
    """Put ``text`` at ``where`` in ``resource``, with no Coding that says it."""
    key = "medicationCodeableConcept" if resource["resourceType"] == "MedicationRequest" else "code"
    if where == "code.text":
        resource[key] = {"text": text}
    elif where == "display":
        resource[key] = {"coding": [{"display": text}]}
    elif where == "note":
        resource["note"] = [{"text": text}]
    elif where == "valueString":
        resource["valueString"] = text
    else:  # the narrative
        div = f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>'
        resource["text"] = {"status": "generated", "div": div}


CODED = st.sampled_from(sorted(PLACES)).flatmap(
    lambda t: st.builds(
        Fact,
        st.just(t),
        st.sampled_from([*PLACES[t], *ANYWHERE]),
        st.sampled_from(["valueCoding", "valueCodeableConcept", "valueCode", "nested"]),
        codings(),
    )
)
WORDS_ONLY = st.sampled_from(sorted(WORDED)).flatmap(
    lambda t: st.builds(
        Fact,
        st.just(t),
        st.sampled_from([f"words:{where}" for where in WORDED[t]]),
        st.just(""),
        words(),
    )
)
FACTS = st.one_of(CODED, WORDS_ONLY)
PREP = [(RXNORM, "476556"), (RXNORM, "1747691"), (HCPCS, "J0750"), (RXNORM, "6813"),
        (NDC, "619580701"), (NDC, "124961208")]  # fmt: skip
SPECIALISTS = [(NUCC, "2084P0802X"), (NUCC, "101YA0400X"), (NUCC, "2084P0800X")]
SITES = [(PLACE_OF_SERVICE, "58"), (PLACE_OF_SERVICE, "57"), (NUCC, "324500000X")]
OTP = [(NUCC, "261QM2800X"), (HCPCS, "G2067"),
       ("https://x12.org/codes/service-type-codes", "AK")]  # fmt: skip


@dataclass(frozen=True)
class MemberSpec:
    facts: list[Fact]
    medication: Resource | None  # a sensitive Medication its order refers to
    program: Resource | None  # a sensitive Organization (an OTP) its claim comes from
    points_at_another: bool  # a record refers to the previous member's sensitive one
    specialist: Resource | None = None  # a sensitive Practitioner who saw the member
    site: Resource | None = None  # a sensitive Location the member was seen at


MEMBERS = st.builds(
    MemberSpec,
    st.lists(FACTS, min_size=1, max_size=5),
    st.one_of(st.none(), codings(PREP)),
    st.one_of(st.none(), codings(OTP), st.just({"name": f"{MARK} Opioid Treatment Program"})),
    st.booleans(),
    st.one_of(st.none(), codings(SPECIALISTS)),
    st.one_of(st.none(), codings(SITES)),
)


# -- loading a batch and what it must not let go


@dataclass
class Batch:
    members: list[str] = field(default_factory=list)
    records: list[Resource] = field(default_factory=list)
    sensitive: set[str] = field(default_factory=set)  # must not leave, nor any link to it
    plain: dict[str, set[str]] = field(default_factory=dict)  # must leave, per member
    since: str = ""


GIVEN = ["Ana", "Bo", "Cyrus", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kofi",
         "Lena", "Milo", "Nia", "Omar", "Pia", "Quinn", "Rui", "Sade", "Tomas"]  # fmt: skip


def demographics(n: int) -> tuple[str, str, str]:
    """Given name, family name and birth date of member ``n``, far from every other's."""
    rng = random.Random(n)
    family = "".join(rng.choices(string.ascii_lowercase, k=10)).capitalize()
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 60 * 365))
    return GIVEN[n % len(GIVEN)], family, born.isoformat()


def build(payer: Payer, specs: list[MemberSpec], batch: Batch) -> None:
    previous_sensitive: str | None = None
    for spec in specs:
        n = next(payer.ids)
        pid, mid = f"leak{n}", f"LM{n}"
        given, family, birth = demographics(n)
        batch.members.append(pid)
        patient = a_patient(pid, family=family, given=given, birth_date=birth, member_id=mid)
        coverage = a_coverage(f"{pid}-cov", patient=pid, member_id=mid, subscriber_id=mid)
        coverage["payor"] = [{"reference": "Organization/leak-plan"}]
        subject = {"reference": f"Patient/{pid}"}
        plain = {"resourceType": "Condition", "id": f"{pid}-plain", "subject": subject,
                 "code": {"coding": [{"system": ICD10CM, "code": "E11.9"}]}}  # fmt: skip
        records = [patient, coverage, plain]
        batch.plain[pid] = {f"Patient/{pid}", f"Condition/{pid}-plain"}
        for i, fact in enumerate(spec.facts):
            resource: Resource = {"resourceType": fact.resource_type, "id": f"{pid}-f{i}"}
            resource["patient" if fact.resource_type == "ExplanationOfBenefit" else "subject"] = (
                subject
            )
            if fact.resource_type == "Observation":
                resource["status"] = "final"
            if fact.where.startswith("words:"):
                place_words(resource, fact.where.removeprefix("words:"), fact.coding["text"])
            else:
                place(resource, fact.where, fact.coding, fact.how)
            records.append(resource)
            batch.sensitive.add(f"{fact.resource_type}/{resource['id']}")
        if spec.medication is not None:
            medication = {"resourceType": "Medication", "id": f"{pid}-med",
                          "code": concept(spec.medication)}  # fmt: skip
            order = {"resourceType": "MedicationRequest", "id": f"{pid}-order",
                     "subject": subject, "status": "active", "intent": "order",
                     "medicationReference": {"reference": f"Medication/{pid}-med"}}  # fmt: skip
            records += [medication, order]
            batch.sensitive |= {f"Medication/{pid}-med", f"MedicationRequest/{pid}-order"}
        if spec.program is not None:
            program = {"resourceType": "Organization", "id": f"{pid}-otp", "name": "A clinic"}
            if "name" in spec.program:  # known only by its name
                program["name"] = spec.program["name"]
            else:
                program["type"] = [concept(spec.program)]
            claim = {"resourceType": "ExplanationOfBenefit", "id": f"{pid}-otp-claim",
                     "patient": subject, "provider": {"reference": f"Organization/{pid}-otp"},
                     "serviceType": {"text": "visit"}}  # fmt: skip
            stay = {"resourceType": "Encounter", "id": f"{pid}-otp-stay", "status": "finished",
                    "subject": subject,
                    "serviceProvider": {"reference": f"Organization/{pid}-otp"}}  # fmt: skip
            records += [program, claim, stay]
            batch.sensitive |= {f"Organization/{pid}-otp", f"ExplanationOfBenefit/{pid}-otp-claim",
                                f"Encounter/{pid}-otp-stay"}  # fmt: skip
        if spec.specialist is not None or spec.site is not None:
            visit: Resource = {"resourceType": "Encounter", "id": f"{pid}-visit",
                               "status": "finished", "subject": subject}  # fmt: skip
            if spec.specialist is not None:
                records.append({"resourceType": "Practitioner", "id": f"{pid}-doc",
                                "qualification": [{"code": concept(spec.specialist)}]})  # fmt: skip
                visit["participant"] = [{"individual": {"reference": f"Practitioner/{pid}-doc"}}]
                batch.sensitive.add(f"Practitioner/{pid}-doc")
            if spec.site is not None:
                records.append({"resourceType": "Location", "id": f"{pid}-site",
                                "type": [concept(spec.site)]})  # fmt: skip
                visit["location"] = [{"location": {"reference": f"Location/{pid}-site"}}]
                batch.sensitive.add(f"Location/{pid}-site")
            records.append(visit)
            if spec.site is not None:  # a visit to a Part 2 program's site says it all
                batch.sensitive.add(f"Encounter/{pid}-visit")
            else:  # a visit to an addiction specialist goes, without the link
                batch.plain[pid].add(f"Encounter/{pid}-visit")
        if spec.points_at_another and previous_sensitive is not None:
            records.append({"resourceType": "Observation", "id": f"{pid}-focus",
                            "status": "final", "subject": subject, "code": {"text": "note"},
                            "focus": [{"reference": previous_sensitive}]})  # fmt: skip
            batch.plain[pid].add(f"Observation/{pid}-focus")
        previous_sensitive = next(
            (k for k in sorted(batch.sensitive) if k.split("/")[1].startswith(f"{pid}-f")), None
        )
        batch.records += records


def load(payer: Payer, batch: Batch) -> None:
    """Import the batch in one go (the plan's directory entry too), then present each
    member's `regular` consent with $member-match."""
    plan = {"resourceType": "Organization", "id": "leak-plan", "name": "A health plan"}
    path = payer.data_dir / f"batch-{payer.loaded}.ndjson"
    payer.loaded += 1
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [plan, *batch.records]))
    batch.since = (datetime.now(UTC) - timedelta(milliseconds=5)).isoformat()
    [report] = payer.platform.import_member_files([path])
    assert report.accepted, report.errors
    with payer.server.client_with(payer.regular) as client:
        for pid in batch.members:
            patient = next(r for r in batch.records if r["id"] == pid)
            mid = patient["identifier"][0]["value"]
            request = an_exchange_request(
                given=patient["name"][0]["given"],
                family=patient["name"][0]["family"],
                birth_date=patient["birthDate"],
                gender="female",
            )
            request["old_coverage"] = {"member_id": mid, "subscriber_id": mid,
                                       "relationship": "self"}  # fmt: skip
            parameters = member_match_parameters(
                request, our_npi=REGULAR_NPI, partner_npi=OLD_NPI, policy="regular"
            )
            matched = client.post("/fhir/Patient/$member-match", json=parameters, headers=FHIR)
            assert matched.status_code == 200, matched.text


# -- every path out


def exported(client: httpx.Client, since: str) -> list[Resource]:
    kick_off = client.get("/fhir/Patient/$export", params={"_since": since}, headers=ASYNC)
    assert kick_off.status_code == 202, kick_off.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        polled = client.get(kick_off.headers["Content-Location"])
        if polled.status_code == 200:
            found: list[Resource] = []
            for entry in polled.json()["output"]:
                answer = client.get(entry["url"], headers={"Accept": "application/fhir+ndjson"})
                assert answer.status_code == 200
                found += [orjson.loads(line) for line in answer.content.splitlines() if line]
            return found
        assert polled.status_code == 202, polled.text
        time.sleep(0.05)
    raise AssertionError("the export did not complete in time")


def what_leaves(payer: Payer, batch: Batch) -> dict[str, list[Resource]]:
    """Everything the `regular` payer receives about the batch, by path."""
    left: dict[str, list[Resource]] = {"everything": [], "search": [], "read": [], "export": []}
    keys = sorted({f"{r['resourceType']}/{r['id']}" for r in batch.records})
    with payer.server.client_with(payer.regular) as client:
        for pid in batch.members:
            left["everything"] += pages(client, f"/fhir/Patient/{pid}/$everything",
                                        {"_count": "4"})  # fmt: skip
            for resource_type in SEARCHED:
                params: Any = [("patient", pid), ("_revinclude", "Provenance:target"),
                               ("_count", "3")]  # fmt: skip
                params += [("_include", value) for value in INCLUDES.get(resource_type, {})]
                left["search"] += pages(client, f"/fhir/{resource_type}", params)
            left["search"] += pages(
                client, "/fhir/Patient", {"_id": pid, "_revinclude": "Provenance:target"}
            )
        for key in keys:
            answer = client.get(f"/fhir/{key}")
            if key in batch.sensitive:
                assert_absent(client, answer, key)
            elif answer.status_code == 200:
                left["read"].append(answer.json())
        left["export"] = exported(client, batch.since)
    return left


def assert_absent(client: httpx.Client, answer: httpx.Response, key: str) -> None:
    """A read that may not be made answers as a read of nothing: the same status and
    body, but for the id asked."""
    resource_type = key.split("/")[0]
    missing = client.get(f"/fhir/{resource_type}/nothing-here")
    assert answer.status_code == missing.status_code == 404, (key, answer.text)
    assert answer.headers["content-type"] == missing.headers["content-type"]
    assert comparable(answer, key) == comparable(missing, f"{resource_type}/nothing-here")


def comparable(answer: httpx.Response, key: str) -> Any:
    """The body with the id asked and the request's own id taken out."""
    body = orjson.loads(answer.text.replace(key, "X"))
    for issue in body.get("issue", []):
        issue.pop("diagnostics", None)
    return body


def assert_nothing_sensitive(batch: Batch, left: dict[str, list[Resource]]) -> None:
    for path, resources in left.items():
        for resource in resources:
            key = f"{resource['resourceType']}/{resource['id']}"
            assert key not in batch.sensitive, (path, key)
            assert MARK not in orjson.dumps(resource).decode(), (path, resource)
            linked = {ref.split("/_history")[0] for ref in iter_references(resource)}
            assert not linked & batch.sensitive, (path, resource)
    everything = {f"{r['resourceType']}/{r['id']}" for r in left["everything"]}
    for pid, keys in batch.plain.items():  # what may go does go
        assert keys <= everything, (pid, keys - everything)


def check_batch(payer: Payer, specs: list[MemberSpec]) -> None:
    batch = Batch()
    build(payer, specs, batch)
    load(payer, batch)
    assert_nothing_sensitive(batch, what_leaves(payer, batch))
    # A payer no member consented to reads none of it: every read absent, as nothing is.
    with payer.server.client_with(payer.other) as client:
        for record in batch.records:
            key = f"{record['resourceType']}/{record['id']}"
            answer = client.get(f"/fhir/{key}")
            if key in batch.sensitive or record["resourceType"] not in (
                "Organization", "Practitioner", "Location", "Medication",
            ):  # fmt: skip
                assert_absent(client, answer, key)


@given(st.lists(MEMBERS, min_size=1, max_size=3))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 10,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_no_sensitive_fact_leaves_under_regular_by_any_path(
    payer: Payer, specs: list[MemberSpec]
) -> None:
    check_batch(payer, specs)


# -- the findings of issue 48, each written once as it was found


def finding(where: str, how: str, resource_type: str, system: str | None, code: Any) -> Fact:
    coding: Resource = {"code": code, "display": f"{MARK} finding"}
    if system is not None:
        coding["system"] = system
    return Fact(resource_type, where, how, coding)


def alone(fact: Fact) -> list[MemberSpec]:
    return [MemberSpec([fact], None, None, False)]


HIV_OID = finding("code", "", "Condition", "urn:oid:2.16.840.1.113883.6.90", "B20")
HIV = finding("code", "", "Condition", ICD10CM, "B20")  # as recognised before issue 48
FINDINGS: dict[str, list[MemberSpec]] = {
    "icd-10-cm by OID": alone(HIV_OID),
    "no system": alone(finding("code", "", "Condition", None, "F11.20")),
    "trailing slash": alone(finding("code", "", "Condition", ICD10CM + "/", "Z21")),
    "https": alone(finding("code", "", "Condition", ICD10CM.replace("http:", "https:"), "F10.20")),
    "extension": alone(finding("extension", "valueCodeableConcept", "Observation", ICD10CM, "B20")),
    "component value": alone(finding("component.value", "", "Observation", SNOMED, "86406008")),
    "supportingInfo": alone(
        finding("supportingInfo.code", "", "ExplanationOfBenefit", ICD10CM, "F11.20")
    ),
    "HIV test by LOINC": alone(finding("code", "", "Observation", LOINC, "20447-9")),
    "PrEP by RxNorm": alone(
        finding("medicationCodeableConcept", "", "MedicationRequest", RXNORM, "476556")
    ),
    # The shared Medication, also read by id by a payer without a consent.
    "PrEP Medication": [
        MemberSpec([HIV], {"system": RXNORM, "code": "476556", "display": MARK}, None, False)
    ],
    "OTP service type": alone(finding("serviceType", "", "Encounter", HCPCS, "G2067")),
    "OTP organization": [
        MemberSpec([HIV], None, {"system": NUCC, "code": "261QM2800X", "display": MARK}, False)
    ],
    "addiction specialist and OTP site": [
        MemberSpec(
            [HIV],
            None,
            None,
            False,
            {"system": NUCC, "code": "2084P0802X", "display": MARK},
            {"system": PLACE_OF_SERVICE, "code": "58", "display": MARK},
        )  # fmt: skip
    ],
    "reference to another member's record": [
        MemberSpec([HIV], None, None, False),
        MemberSpec([HIV], None, None, True),
    ],
}


@pytest.mark.parametrize("specs", list(FINDINGS.values()), ids=list(FINDINGS))
def test_each_finding_leaves_by_no_path(payer: Payer, specs: list[MemberSpec]) -> None:
    check_batch(payer, specs)


def test_a_read_without_consent_answers_as_a_missing_one(payer: Payer) -> None:
    batch = Batch()
    build(payer, alone(HIV), batch)
    load(payer, batch)
    [pid] = batch.members
    with payer.server.client_with(payer.other) as client:
        for key in (f"Patient/{pid}", f"Condition/{pid}-plain", f"Coverage/{pid}-cov"):
            answer = client.get(f"/fhir/{key}")
            assert_absent(client, answer, key)
            assert "consent" not in answer.text.lower()


def test_a_member_scoped_read_of_another_members_record_names_no_one(payer: Payer) -> None:
    batch = Batch()
    build(payer, alone(HIV) * 2, batch)
    load(payer, batch)
    mine, theirs = batch.members
    key = new_signing_key()
    payer.server.register_client(
        "scoped-payer", npi=REGULAR_NPI, scope=REQUESTER_SCOPES, jwks={"keys": [public_jwk(key)]}
    )
    now = int(time.time())
    base = payer.server.base_url
    claims = {"iss": "scoped-payer", "sub": "scoped-payer", "aud": f"{base}/auth/token",
              "iat": now, "exp": now + 240, "jti": str(uuid.uuid4())}  # fmt: skip
    signed = jwt.encode({"alg": "ES384", "kid": key.kid}, claims, key, algorithms=["ES384"])
    granted = httpx.post(
        f"{base}/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "patient/*.rs",
            "patient": mine,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": signed,
        },
        timeout=10,
    )
    assert granted.status_code == 200, granted.text
    with payer.server.client_with(granted.json()["access_token"]) as scoped:
        assert scoped.get(f"/fhir/Condition/{mine}-plain").status_code == 200
        target = f"Condition/{theirs}-plain"
        answer = scoped.get(f"/fhir/{target}")
        assert_absent(scoped, answer, target)
        assert theirs not in answer.text.replace(target, "")
