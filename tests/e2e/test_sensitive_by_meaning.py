"""Sensitive by meaning, not by spelling (issue 67, item 2), over HTTP against one real
old-payer process for the module.

Each case of the issue, written as claims, pharmacies and labs write it: a medication
for opioid use disorder by its NDC (hyphenated and 11-digit); PrEP by the NDC of the
shared Medication its order points to, and as the generic named only in a display; an
abortion by ICD-10-PCS and by HCPCS; a hereditary-cancer gene test by LOINC and by CPT;
a diagnosis in full-width characters, or carrying only a display; an opioid treatment
program's visit by its SNOMED CT service type; the program's Organization, known only
by its name, and a stay and a claim that point to it; free text alone (``code.text``,
a note, a ``valueString``, a narrative). One member consented under ``regular``, one
under ``sensitive``, each with every case; records that only look alike (bowel prep,
hearing aids) and one with neither a code nor text go under both (ADR 0043).

Every disclosure path is read: each resource by id, searches with every ``_include``,
``$everything`` pages, ``Group/[id]/$davinci-data-export`` and ``Group/[id]/$export``
of the matched Group, and ``Patient/$export``. Under ``regular`` no case, nothing that
depends on one and no reference to one leaves; under ``sensitive`` every case does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from payerbridge.consent.categories import CPT, HCPCS, ICD10CM, ICD10PCS, LOINC, NDC, SNOMED
from payerbridge.disclosure.search import INCLUDES
from payerbridge.fhir.resources import iter_references
from tests.builders import a_coverage, a_member_bundle, a_patient
from tests.fhir_client import downloaded, finished, pages
from tests.servers import REQUESTER_SCOPES, ServerProcess

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {**FHIR, "Prefer": "respond-async"}
SEARCHED = ("Condition", "Observation", "ExplanationOfBenefit", "Encounter", "Procedure",
            "MedicationRequest", "MedicationDispense")  # fmt: skip

Resource = dict[str, Any]


def coded(system: str | None, code: str | None = None, display: str | None = None) -> Resource:
    coding: Resource = {}
    for key, value in (("system", system), ("code", code), ("display", display)):
        if value is not None:
            coding[key] = value
    return {"coding": [coding]}


def claim(rid: str, pid: str, **fields: Any) -> Resource:
    return {"resourceType": "ExplanationOfBenefit", "id": rid, "status": "active",
            "patient": {"reference": f"Patient/{pid}"}, **fields}  # fmt: skip


def line(concept: Resource) -> list[Resource]:
    return [{"sequence": 1, "productOrService": concept}]


def cases(pid: str) -> list[Resource]:
    """Every case of item 2 for member ``pid``: each must go under ``sensitive`` only."""
    subject = {"reference": f"Patient/{pid}"}

    def record(resource_type: str, name: str, **fields: Any) -> Resource:
        return {"resourceType": resource_type, "id": f"{pid}-{name}", "subject": subject, **fields}

    order = {"status": "active", "intent": "order"}
    div = '<div xmlns="http://www.w3.org/1999/xhtml">Opioid dependence, follow-up</div>'
    program = f"{pid}-otp"
    return [
        record("MedicationRequest", "oud-ndc", **order,
               medicationCodeableConcept=coded(NDC, "12496-1208-3")),
        record("MedicationDispense", "oud-ndc-11", status="completed",
               medicationCodeableConcept=coded("urn:oid:2.16.840.1.113883.6.69", "12496120803")),
        {"resourceType": "Medication", "id": f"{pid}-prep-drug",
         "code": coded(NDC, "61958-0701-01")},
        record("MedicationRequest", "prep-order", **order,
               medicationReference={"reference": f"Medication/{pid}-prep-drug"}),
        record("MedicationRequest", "prep-generic", **order, medicationCodeableConcept=coded(
            None, None, "emtricitabine 200 MG / tenofovir disoproxil fumarate 300 MG Oral Tablet")),
        record("Procedure", "abortion-pcs", status="completed", code=coded(ICD10PCS, "10A07ZZ")),
        claim(f"{pid}-abortion-hcpcs", pid, item=line(coded(HCPCS, "S0199"))),
        record("Observation", "gene-loinc", status="final", code=coded(LOINC, "51969-4")),
        claim(f"{pid}-gene-cpt", pid, item=line(coded(CPT, "81162"))),
        record("Condition", "full-width", code=coded(ICD10CM, "Ｆ１１.２０")),
        record("Condition", "display-only",
               code=coded(None, None, "Human immunodeficiency virus [HIV] disease")),
        record("Encounter", "otp-visit", status="finished",
               serviceType=coded(SNOMED, "266707007")),
        {"resourceType": "Organization", "id": program,
         "name": "Riverside Opioid Treatment Program"},
        record("Encounter", "otp-stay", status="finished",
               serviceProvider={"reference": f"Organization/{program}"}),
        claim(f"{pid}-otp-claim", pid, provider={"reference": f"Organization/{program}"}),
        record("Condition", "text-only", code={"text": "HIV disease"}),
        record("Observation", "note", status="final", code={"text": "counselling"},
               note=[{"text": "Discussed pre-exposure prophylaxis"}]),
        record("Observation", "value-string", status="final", code={"text": "history"},
               valueString="alcohol use disorder, in early remission"),
        record("Condition", "narrative", text={"status": "generated", "div": div}),
    ]  # fmt: skip


def plain(pid: str) -> list[Resource]:
    """What goes under both: words that only look alike, and a record with neither a
    code nor text (nothing to judge: it says nothing)."""
    subject = {"reference": f"Patient/{pid}"}
    return [
        {"resourceType": "Condition", "id": f"{pid}-diabetes", "subject": subject,
         "code": coded(ICD10CM, "E11.9", "Type 2 diabetes mellitus without complications")},
        {"resourceType": "Observation", "id": f"{pid}-prep", "subject": subject, "status": "final",
         "code": {"text": "colonoscopy"}, "valueString": "bowel prep completed"},
        {"resourceType": "Observation", "id": f"{pid}-hearing", "subject": subject,
         "status": "final", "code": {"text": "HEARING AIDS fitted, both ears"}},
        {"resourceType": "Condition", "id": f"{pid}-bare", "subject": subject},
    ]  # fmt: skip


def key(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


@dataclass(frozen=True)
class Member:
    pid: str
    policy: str
    given: str
    family: str
    birth: str
    member_id: str

    def records(self) -> list[Resource]:
        patient = a_patient(self.pid, family=self.family, given=self.given,
                            birth_date=self.birth, member_id=self.member_id)  # fmt: skip
        cov = a_coverage(f"{self.pid}-cov", patient=self.pid, member_id=self.member_id,
                         subscriber_id=self.member_id)  # fmt: skip
        return [patient, cov, *plain(self.pid), *cases(self.pid)]

    def bundle(self) -> Resource:
        return a_member_bundle(self.pid, self.given, self.family, self.birth, "female",
                               self.member_id, policy=self.policy)  # fmt: skip


RITA = Member("rita", "regular", "Rita", "Okonkwo", "1979-04-12", "MR1")
SAM = Member("sam", "sensitive", "Samira", "Velasquez", "1986-09-03", "MS2")


@dataclass
class Payer:
    server: ServerProcess
    token: str
    group: str


@pytest.fixture(scope="module")
def payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Payer]:
    data = tmp_path_factory.mktemp("by-meaning") / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in [*RITA.records(), *SAM.records()]))
    server = module_server("old", env={"PAYERBRIDGE_ORG_NPI": OLD_NPI}, import_files=[data])
    token = server.register_client("newplan", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    with server.client_with(token) as client:
        parameters = {"resourceType": "Parameters", "parameter": [RITA.bundle(), SAM.bundle()]}
        manifest = finished(
            client, client.post("/fhir/Group/$bulk-member-match", json=parameters, headers=ASYNC)
        )
        [group_file] = manifest["output"]
        group = orjson.loads(client.get(group_file["url"]).content.splitlines()[0])
        matched = sorted(m["entity"]["reference"] for m in group["member"])
        assert matched == ["Patient/rita", "Patient/sam"], matched
    yield Payer(server, token, group["id"])


def what_leaves(payer: Payer, member: Member) -> dict[str, list[Resource]]:
    """Everything the new payer receives about ``member``, by path."""
    left: dict[str, list[Resource]] = {}
    with payer.server.client_with(payer.token) as client:
        left["read"] = [
            answer.json()
            for record in member.records()
            if (answer := client.get(f"/fhir/{key(record)}")).status_code == 200
        ]
        left["everything"] = pages(client, f"/fhir/Patient/{member.pid}/$everything",
                                   {"_count": "5"})  # fmt: skip
        left["search"] = []
        for resource_type in SEARCHED:
            params = [("patient", member.pid), ("_count", "4")]
            params += [("_include", value) for value in INCLUDES.get(resource_type, {})]
            left["search"] += pages(client, f"/fhir/{resource_type}", params)
        group = f"/fhir/Group/{payer.group}"
        for name, kick_off in (
            ("davinci-data-export", client.post(f"{group}/$davinci-data-export", headers=ASYNC)),
            ("group-export", client.get(f"{group}/$export", headers=ASYNC)),
            ("patient-export", client.get("/fhir/Patient/$export", headers=ASYNC)),
        ):
            exported = downloaded(client, finished(client, kick_off))
            left[name] = [r for r in exported if _about(r, member)]
    return left


def _about(resource: Resource, member: Member) -> bool:
    """Whether an exported resource is the member's (the others' are in the same files)."""
    if resource["id"].startswith(f"{member.pid}-") or resource["id"] == member.pid:
        return True
    return any(f"Patient/{member.pid}" in ref for ref in iter_references(resource))


CASES_OF = {m.pid: {key(r) for r in cases(m.pid)} for m in (RITA, SAM)}
PLAIN_OF = {m.pid: {key(r) for r in plain(m.pid)} | {f"Patient/{m.pid}"} for m in (RITA, SAM)}


def test_under_regular_no_case_leaves_by_any_path(payer: Payer) -> None:
    left = what_leaves(payer, RITA)
    withheld = CASES_OF[RITA.pid]
    for path, resources in left.items():
        for resource in resources:
            assert key(resource) not in withheld, (path, key(resource))
            linked = {reference.split("/_history")[0] for reference in iter_references(resource)}
            assert not linked & withheld, (path, resource)
            text = orjson.dumps(resource).decode()
            assert "Opioid" not in text and "HIV" not in text, (path, resource)
        # What only looks sensitive, and what says nothing, goes by every path.
        found = {key(r) for r in resources}
        if path in ("read", "everything"):
            assert PLAIN_OF[RITA.pid] <= found, (path, PLAIN_OF[RITA.pid] - found)
        else:
            assert found, path


# Shared resources that are sensitive by themselves are not read by id outside a
# member's records (ADR 0011): they go with the records that refer to them.
SHARED = ("Medication/", "Organization/")


def test_under_sensitive_every_case_leaves(payer: Payer) -> None:
    left = what_leaves(payer, SAM)
    everything = CASES_OF[SAM.pid] | PLAIN_OF[SAM.pid]
    for path in ("everything", "davinci-data-export", "group-export", "patient-export"):
        found = {key(r) for r in left[path]}
        assert everything <= found, (path, everything - found)
    read = {key(r) for r in left["read"]}
    assert {k for k in everything if not k.startswith(SHARED)} <= read
    searched = {key(r) for r in left["search"]}
    assert {k for k in CASES_OF[SAM.pid] if k.split("/")[0] in SEARCHED} <= searched
