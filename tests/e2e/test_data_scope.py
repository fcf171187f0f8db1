"""Only what the payer-to-payer rule lets go leaves, by every path, against one real
old-payer process for the module (SQLite, and PostgreSQL in CI).

A member's claim is stored as CARIN BB publishes it, with every amount (totals, payment,
line adjudications), her Coverage with its copays, and two prior authorizations: one for
a service, one for a drug (by NDC). Through a read, a search with ``_include``,
``$everything`` pages, ``Patient/$export``, ``Group/[id]/$export`` and
``Group/[id]/$davinci-data-export``: the claim leaves in the non-financial shape and
validates against the CARIN BB Basis profile, the Coverage without its cost-sharing, the
service authorization as it is, and the drug authorization not at all; the audit trail
names the scope and what it removed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests import fhir_profiles
from tests.builders import (
    a_coverage,
    a_member_bundle,
    a_patient,
    an_exchange_request,
    member_match_parameters,
)
from tests.fhir_client import bundles, downloaded, finished
from tests.servers import REQUESTER_SCOPES, ServerProcess, run_cli

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {**FHIR, "Prefer": "respond-async"}
CARIN = "carin-bb-2.2.0"
PID, MID = "scope1", "SC100"
CLAIM, SERVICE_PA, DRUG_PA = "scope1-claim", "scope1-pa-mri", "scope1-pa-drug"

Resource = dict[str, Any]


def _claim(today: date) -> Resource:
    """CARIN BB's Professional1 example, as a plan stores it (amounts and all), for our
    member and dated this month."""
    path = fhir_profiles.DATA / CARIN / "example" / "ExplanationOfBenefit-EOBProfessional1.json"
    claim: Resource = json.loads(path.read_text())
    day = (today - timedelta(days=20)).isoformat()
    claim.update(
        id=CLAIM,
        patient={"reference": f"Patient/{PID}"},
        created=f"{day}T00:00:00Z",
        billablePeriod={"start": day, "end": day},
    )
    claim["insurance"][0]["coverage"] = {"reference": f"Coverage/{PID}-cov"}
    for item in claim.get("item", []):
        item.pop("servicedPeriod", None)
        item["servicedDate"] = day
    return claim


def _authorization(pid: str, rid: str, product: Resource) -> Resource:
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "status": "active",
        "outcome": "queued",
        "use": "preauthorization",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },  # fmt: skip
        "patient": {"reference": f"Patient/{pid}"},
        "created": datetime.now(UTC).isoformat(),
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [product]},
                "adjudication": [
                    {"category": {"text": "eligible"}, "amount": {"value": 800, "currency": "USD"}}
                ],
            }
        ],
    }


def member_records() -> list[Resource]:
    patient = a_patient(
        PID, given="Imani", family="Scopewell", birth_date="1984-05-06", member_id=MID
    )
    coverage = a_coverage(f"{PID}-cov", patient=PID, member_id=MID, subscriber_id=MID)
    coverage["costToBeneficiary"] = [
        {"type": {"text": "copay"}, "valueMoney": {"value": 25, "currency": "USD"}}
    ]
    mri = {"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}
    buprenorphine = {"system": "http://hl7.org/fhir/sid/ndc", "code": "12496-1208-1"}
    return [
        patient,
        coverage,
        _claim(datetime.now(UTC).date()),
        _authorization(PID, SERVICE_PA, mri),
        _authorization(PID, DRUG_PA, buprenorphine),
    ]


@dataclass
class Payer:
    server: ServerProcess
    platform: Any
    token: str
    group: str


@pytest.fixture(scope="module")
def payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Payer]:
    data = tmp_path_factory.mktemp("scope") / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in member_records()))
    server = module_server("old", env={"PAYERBRIDGE_ORG_NPI": OLD_NPI}, import_files=[data])
    token = server.register_client("new-plan", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    with server.client_with(token) as client:
        request = an_exchange_request(
            given=["Imani"], family="Scopewell", birth_date="1984-05-06", gender="female"
        )
        request["old_coverage"] = {"member_id": MID, "subscriber_id": MID, "relationship": "self"}
        parameters = member_match_parameters(request, our_npi=NEW_NPI, partner_npi=OLD_NPI)
        matched = client.post("/fhir/Patient/$member-match", json=parameters, headers=FHIR)
        assert matched.status_code == 200, matched.text
        bundle = a_member_bundle("sub-imani", "Imani", "Scopewell", "1984-05-06", "female", MID)
        manifest = finished(
            client,
            client.post(
                "/fhir/Group/$bulk-member-match",
                json={"resourceType": "Parameters", "parameter": [bundle]},
                headers=ASYNC,
            ),
        )
        group_line = client.get(manifest["output"][0]["url"]).content.splitlines()[0]
        group = orjson.loads(group_line)
        assert [m["entity"]["reference"] for m in group["member"]] == [f"Patient/{PID}"]
    with server.platform() as platform:
        yield Payer(server, platform, token, group["id"])


def exported(client: httpx.Client, answer: httpx.Response) -> list[Resource]:
    return downloaded(client, finished(client, answer))


def pages(client: httpx.Client, url: str, params: Any) -> tuple[list[Resource], list[Resource]]:
    """What the pages carry, and their outcome entries."""
    found: list[Resource] = []
    outcomes: list[Resource] = []
    for bundle in bundles(client, url, params):
        for entry in bundle.get("entry", []):
            kept = outcomes if entry["search"]["mode"] == "outcome" else found
            kept.append(entry["resource"])
    return found, outcomes


def every_path(payer: Payer) -> dict[str, list[Resource]]:
    group = f"/fhir/Group/{payer.group}"
    with payer.server.client_with(payer.token) as client:
        reads = []
        for key in (f"ExplanationOfBenefit/{CLAIM}", f"ExplanationOfBenefit/{SERVICE_PA}",
                    f"Coverage/{PID}-cov"):  # fmt: skip
            answer = client.get(f"/fhir/{key}")
            assert answer.status_code == 200, answer.text
            reads.append(answer.json())
        drug = client.get(f"/fhir/ExplanationOfBenefit/{DRUG_PA}")
        assert drug.status_code == 404, "a drug prior authorization reads as absent"
        search, search_outcomes = pages(
            client,
            "/fhir/ExplanationOfBenefit",
            [("patient", PID), ("_include", "ExplanationOfBenefit:insurer"), ("_count", "1")],
        )
        everything, everything_outcomes = pages(
            client, f"/fhir/Patient/{PID}/$everything", {"_count": "2"}
        )
        assert any("ExplanationOfBenefit.total" in _text(o) for o in search_outcomes)
        assert any("Coverage.costToBeneficiary" in _text(o) for o in everything_outcomes)
        return {
            "read": reads,
            "search": search,
            "everything": everything,
            "patient-export": exported(client, client.get("/fhir/Patient/$export", headers=ASYNC)),
            "group-export": exported(client, client.get(f"{group}/$export", headers=ASYNC)),
            "davinci-data-export": exported(
                client, client.post(f"{group}/$davinci-data-export", headers=ASYNC)
            ),
        }


def _text(outcome: Resource) -> str:
    return " ".join(issue["details"]["text"] for issue in outcome.get("issue", []))


def _money(node: Any) -> bool:
    if isinstance(node, dict):
        return "currency" in node or any(_money(v) for v in node.values())
    if isinstance(node, list):
        return any(_money(v) for v in node)
    return False


def test_only_what_the_rule_allows_leaves_by_every_path(payer: Payer) -> None:
    for path, resources in every_path(payer).items():
        by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        assert f"ExplanationOfBenefit/{DRUG_PA}" not in by_key, path
        claim = by_key[f"ExplanationOfBenefit/{CLAIM}"]
        assert not _money(claim), (path, claim)
        for element in ("total", "payment", "payee", "benefitBalance"):
            assert element not in claim, (path, element)
        (profile,) = claim["meta"]["profile"]
        assert profile.endswith("C4BB-ExplanationOfBenefit-Professional-NonClinician-Basis|2.2.0")
        basis = fhir_profiles.structure(CARIN, profile)
        assert fhir_profiles.violations(claim, basis, CARIN) == [], path
        assert claim["diagnosis"] and claim["item"], "what says no amount still goes"
        if path != "search":
            coverage = by_key[f"Coverage/{PID}-cov"]
            assert "costToBeneficiary" not in coverage, path
        authorization = by_key[f"ExplanationOfBenefit/{SERVICE_PA}"]
        assert authorization["item"][0]["adjudication"][0]["amount"]["value"] == 800, path


def test_the_audit_trail_names_the_scope_and_what_it_removed(payer: Payer) -> None:
    with payer.server.client_with(payer.token) as client:
        pages(client, f"/fhir/Patient/{PID}/$everything", {"_count": "50"})
    events = [(e["action"], e["detail"]) for e in payer.platform.audit.for_entity("Patient", PID)]
    decisions = [detail for _, detail in events if "code_sets" in detail]
    assert decisions and all(d.get("scope", "").startswith("payer-to-payer@") for d in decisions)
    page = [detail for action, detail in events if action == "patient.everything"][-1]
    assert page["scope"].startswith("payer-to-payer@")
    assert page["outside_scope"] == {"drug-prior-authorization": 1}
    assert page["elements_removed"]["ExplanationOfBenefit.total"] == 1
    assert page["elements_removed"]["Coverage.costToBeneficiary"] == 1


def test_a_scope_file_that_cannot_be_used_stops_the_payer(tmp_path: Path) -> None:
    shipped = files("payerbridge.disclosure").joinpath("data/payer-to-payer-scope.json")
    scope = json.loads(shipped.read_text())
    scope["resources"][3]["source"] = "a-source-nobody-cited"
    path = tmp_path / "scope.json"
    path.write_text(json.dumps(scope))
    refused = run_cli(  # refused before it binds a port: the port is never used
        ["serve", "--data-dir", str(tmp_path / "data"), "--port", "9"],
        env={"PAYERBRIDGE_SCOPE_FILE": str(path)},
        timeout=60,
    )
    assert refused.returncode != 0
    assert "PAYERBRIDGE_SCOPE_FILE" in refused.stderr
    assert "resources.3.source" in refused.stderr
