"""The audit read and proven, end to end: an exchange with the sandbox's old payer
followed from intake to its end (search, timeline, AuditEvent at both payers), and a
partner's proofs of its own request checked with the public key alone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.security.break_glass import masked
from payerbridge.security.model import AUDITOR_SCOPE, EXCHANGES_SCOPE, OPERATOR_SCOPE
from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_exchange import HAPPY_PATH, start_payers, submit, switcher_to, wait_terminal
from tests.servers import ServerProcess, new_key, run_cli

Payers = tuple[ServerProcess, ServerProcess, dict[str, Any]]
FHIR = {"Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 40, 7, date.today() - timedelta(days=1), switchers=2)
    return out


@pytest.fixture(scope="module")
def shared(module_server: Callable[..., ServerProcess], network: Path) -> Payers:
    """An old payer and a new one, the old one the new one's partner (as test_exchange)."""
    return start_payers(module_server, network)


def _completed(new: ServerProcess, network: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Switcher 0's exchange run to its end: the exchange, the submitting request's id
    and the switcher."""
    switcher = switcher_to(network, 0)
    with new.client() as client:
        response = client.post("/exchanges", json=switcher["request"], headers=new_key())
        assert response.status_code == 202, response.text
        exchange = wait_terminal(client, response.headers["location"])
    assert exchange["state"] == "completed", exchange
    return exchange, response.headers["x-request-id"], switcher


def test_an_exchange_is_found_and_its_life_read_back_field_by_field(
    shared: Payers, network: Path
) -> None:
    old, new, info = shared
    exchange, request_id, switcher = _completed(new, network)
    member = switcher["request"]["new_coverage"]["member_id"]
    with new.client() as client:
        for params in ({"request_id": request_id}, {"member": member, "state": "completed"}):
            found = client.get("/exchanges", params=params).json()
            assert [e["id"] for e in found["items"]] == [exchange["id"]], params
        audit = client.get(f"/exchanges/{exchange['id']}/audit")
        extra = client.get(f"/exchanges/{exchange['id']}/audit", params={"since": "1"})
        assert client.get("/exchanges/nope/audit").status_code == 404
    assert audit.status_code == 200, audit.text
    assert extra.status_code == 400 and extra.json()["issue"][0]["expression"] == ["since"]
    timeline = audit.json()
    events = timeline["events"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    moves = [e["detail"]["to"] for e in events if e["action"] == "exchange.transition"]
    assert moves == HAPPY_PATH
    intake = timeline["intake"]
    assert (intake["kind"], intake["request_id"]) == ("intake", request_id)
    assert intake["actor"] == exchange["client_id"]
    decisions = timeline["consent_decisions"]
    assert [(d["detail"]["hop"], d["outcome"]) for d in decisions] == [
        ("member-match", "permit"),
        ("everything", "permit"),
    ]
    assert {d["detail"]["consent_id"] for d in decisions} == {exchange["consent_id"]}
    route = timeline["route"]
    assert (route["endpoint"], route["find_member"], route["data"]) == (
        old.fhir_base,
        "MemberId",
        "$everything",
    )
    identity = timeline["identity"]
    assert identity["outcome"] == "matched" and identity["decided_by"] == "old payer"
    assert identity["matched_member"] == f"Patient/{switcher['old_patient_id']}"
    assert identity["member_found_by"] == "MemberId"
    calls = timeline["partner_calls"]
    assert [(c["step"], c["attempt"], c["outcome"], c["status"]) for c in calls] == [
        ("member-match", 1, "answered", 200),
        ("everything", 1, "answered", 200),
    ]
    assert all(c["endpoint"] == old.fhir_base and c["latency_ms"] > 0 for c in calls)
    assert timeline["retries"] == []
    final = timeline["final"]
    assert (final["state"], final["reason_code"]) == ("completed", None)
    assert final["seq"] == events[-1]["seq"]

    # Another client's exchange is missing to it; an auditor reads it, the member's
    # identifier at the old payer masked as the console masks it (ADR 0038), which its
    # own client reads whole.
    whole = identity["member_identifier"]
    assert whole and exchange["member_identifier"] == whole
    stranger = new.register_client(f"stranger-{uuid.uuid4().hex[:6]}", scope=EXCHANGES_SCOPE)
    with new.client_with(stranger) as client:
        assert client.get(f"/exchanges/{exchange['id']}/audit").status_code == 404
    auditor = new.register_client(f"auditor-{uuid.uuid4().hex[:6]}", scope=AUDITOR_SCOPE)
    with new.client_with(auditor) as client:
        read = client.get(f"/exchanges/{exchange['id']}/audit").json()
        assert read["identity"]["member_identifier"] == masked(whole) != whole
        assert read == timeline | {"identity": identity | {"member_identifier": masked(whole)}}
        shown = client.get(f"/exchanges/{exchange['id']}").json()
        listed = client.get("/exchanges", params={"request_id": request_id}).json()["items"]
        assert shown["member_identifier"] == listed[0]["member_identifier"] == masked(whole)
        _check_new_payers_audit_events(client, exchange, request_id, timeline)
    with new.client() as client:  # an operator is not an auditor
        refused = client.get("/fhir/AuditEvent", headers=FHIR)
        assert refused.status_code == 403, refused.text
        statement = client.get("/fhir/metadata", headers=FHIR).json()
    declared = {r["type"]: r for r in statement["rest"][0]["resource"]}["AuditEvent"]
    assert {p["name"] for p in declared["searchParam"]} == {
        "patient", "entity", "agent", "subtype", "date", "_count"
    }  # fmt: skip
    _check_old_payers_disclosure(old, info, switcher)
    # The member asked for again: two exchanges, a page each, the next one linked.
    with new.client() as client:
        again = submit(client, switcher["request"])
        first = client.get("/exchanges", params={"member": member, "_count": 1})
        assert first.headers["link"] == f'<{first.json()["next"]}>; rel="next"'
        second = client.get(first.json()["next"]).json()
    assert first.json()["total"] == second["total"] == 2 and second["next"] is None
    assert [first.json()["items"][0]["id"], second["items"][0]["id"]] == [
        again.rsplit("/", 1)[1],
        exchange["id"],
    ]


def _check_new_payers_audit_events(
    client: Any, exchange: dict[str, Any], request_id: str, timeline: dict[str, Any]
) -> None:
    """The exchange's events as AuditEvent: the data's arrival a BALP Privacy Disclosure
    at the Recipient; the submission naming its X-Request-ID."""
    search = client.get(
        "/fhir/AuditEvent", params={"entity": f"Exchange/{exchange['id']}"}, headers=FHIR
    )
    assert search.status_code == 200, search.text
    bundle = search.json()
    assert bundle["type"] == "searchset"
    resources = [entry["resource"] for entry in bundle["entry"]]
    exchange_seqs = [e["seq"] for e in timeline["events"] if e["action"].startswith("exchange.")]
    assert [int(r["id"]) for r in resources] == sorted(exchange_seqs, reverse=True)
    (received,) = [
        r for r in resources if r.get("meta", {}).get("profile", [""])[0].endswith("Recipient")
    ]
    assert received["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110107",
        "display": "Import",
    }
    assert received["subtype"][0]["code"] == "disclose" and received["action"] == "C"
    assert received["outcome"] == "0"
    assert received["purposeOfEvent"][0]["coding"][0]["code"] == "PATRQT"
    source, recipient = received["agent"]
    assert source["type"]["coding"][0]["code"] == "110153"
    assert source["network"]["address"] == timeline["route"]["endpoint"]
    assert recipient["type"]["coding"][0]["code"] == "110152" and recipient["requestor"] is True
    (what,) = [e for e in received["entity"] if "identifier" in e["what"]][:1]
    assert what["what"]["identifier"] == {
        "system": "urn:payerbridge:Exchange",
        "value": exchange["id"],
    }
    assert received["source"]["type"][0]["code"] == "4"
    submitted = resources[-1]
    assert submitted["type"]["code"] == "110100" and submitted["outcomeDesc"] == "submitted"
    assert submitted["agent"][0]["who"]["identifier"]["value"] == exchange["client_id"]
    tagged = [e for e in submitted["entity"] if e["type"]["code"] == "XrequestId"]
    assert [e["what"]["identifier"]["value"] for e in tagged] == [request_id]
    one = client.get(f"/fhir/AuditEvent/{received['id']}", headers=FHIR).json()
    assert one == received
    # Paged: the next link continues where the page ended.
    first = client.get("/fhir/AuditEvent", params={"entity": f"Exchange/{exchange['id']}",
                                                    "_count": 3}, headers=FHIR).json()  # fmt: skip
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get(following, headers=FHIR).json()
    assert [e["resource"]["id"] for e in first["entry"] + second["entry"]] == [
        r["id"] for r in resources[:6]
    ]
    bad = client.get("/fhir/AuditEvent", params={"who": "x", "date": "soon"}, headers=FHIR)
    assert bad.status_code == 400
    assert [i["expression"][0] for i in bad.json()["issue"]] == ["who", "date"]


def _check_old_payers_disclosure(
    old: ServerProcess, info: dict[str, Any], switcher: dict[str, Any]
) -> None:
    """At the old payer, the $everything that sent the member's data: a BALP Privacy
    Disclosure at the Source, naming the recipient and the patient."""
    auditor = old.register_client(f"auditor-{uuid.uuid4().hex[:6]}", scope=AUDITOR_SCOPE)
    patient = switcher["old_patient_id"]
    with old.client_with(auditor) as client:
        found = client.get(
            "/fhir/AuditEvent",
            params={"patient": patient, "subtype": "patient.everything"},
            headers=FHIR,
        ).json()
    disclosure = found["entry"][-1]["resource"]  # the oldest: the exchange's
    balp = "https://profiles.ihe.net/ITI/BALP/StructureDefinition"
    assert disclosure["meta"]["profile"] == [f"{balp}/IHE.BasicAudit.PrivacyDisclosure.Source"]
    assert (disclosure["type"]["code"], disclosure["action"]) == ("110106", "R")
    source, recipient = disclosure["agent"]
    assert source["who"]["identifier"]["value"] == info["payers"][0]["npi"]
    client_system = "urn:payerbridge:client"
    assert recipient["who"]["identifier"] == {"system": client_system, "value": "platform"}
    assert recipient["requestor"] is True
    assert disclosure["entity"][0]["what"] == {"reference": f"Patient/{patient}"}
    assert disclosure["entity"][0]["role"]["code"] == "1"


def test_a_partner_proves_its_own_requests_events_with_the_public_key_alone(
    shared: Payers, network: Path, tmp_path: Path
) -> None:
    old, new, _info = shared
    switcher = switcher_to(network, 1)
    with new.client() as client:  # the new payer's exchange gives platform-reader a consent
        assert wait_terminal(client, submit(client, switcher["request"]))["state"] == "completed"
    request_id = f"proof-{uuid.uuid4().hex}"
    patient = switcher["old_patient_id"]
    assert old.cli("audit", "checkpoint").returncode == 0  # the one the partner holds
    with old.client() as client:  # the partner (platform-reader) reads, under its own id
        read = client.get(
            f"/fhir/Patient/{patient}/$everything", headers={**FHIR, "X-Request-ID": request_id}
        )
        assert read.status_code == 200, read.text
        pending = client.get("/audit/proofs", params={"request": request_id}).json()
        assert pending["proofs"] == [] and pending["pending"]
        held = pending["checkpoint"]["seq"]
        signed = old.cli("audit", "checkpoint")
        assert signed.returncode == 0, signed.stderr
        answer = client.get("/audit/proofs", params={"request": request_id, "since": held})
    assert answer.status_code == 200, answer.text
    proofs = answer.json()
    assert proofs["pending"] == [] and proofs["proofs"]
    assert proofs["consistency"]["first"]["seq"] == held
    assert {p["event"]["actor"] for p in proofs["proofs"]} == {"platform-reader"}
    assert {p["event"]["request_id"] for p in proofs["proofs"]} == {request_id}
    proof_file = tmp_path / "proofs.json"
    proof_file.write_bytes(orjson.dumps(proofs))
    # The public key alone, away from the data dir; no settings, no database.
    key = tmp_path / "old-payer-audit.pub"
    key.write_bytes((old.data_dir / "audit-signing.key.pub").read_bytes())

    def verify_proof(public_key: Path) -> Any:
        return run_cli(["audit", "verify-proof", str(proof_file), "--public-key", str(public_key)])

    checked = verify_proof(key)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "proof holds" in checked.stdout
    # An altered event, another key: the proof fails, naming why.
    altered = orjson.loads(proof_file.read_bytes())
    altered["proofs"][0]["event"]["outcome"] = "failure"
    proof_file.write_bytes(orjson.dumps(altered))
    refused = verify_proof(key)
    assert refused.returncode == 6 and "do not give its leaf hash" in refused.stderr
    other_key = new.data_dir / "audit-signing.key.pub"
    proof_file.write_bytes(orjson.dumps(proofs))
    wrong = verify_proof(other_key)
    assert wrong.returncode == 6 and "not signed by this key" in wrong.stderr
    # One event proven by the CLI too, against the same checkpoint.
    seq = proofs["proofs"][0]["event"]["seq"]
    single = old.cli("audit", "prove", "--event", str(seq))
    assert single.returncode == 0, single.stderr
    assert orjson.loads(single.stdout)["audit_path"] == proofs["proofs"][0]["audit_path"]
    # Another client gets nothing of it; bad input is named.
    stranger = old.register_client(f"stranger-{uuid.uuid4().hex[:6]}")
    with old.client_with(stranger) as client:
        assert client.get("/audit/proofs", params={"request": request_id}).status_code == 404
        missing = client.get("/audit/proofs", params={"since": "x", "extra": "1"})
        assert missing.status_code == 400
        assert [i["expression"][0] for i in missing.json()["issue"]] == ["extra"]
        assert client.get("/audit/proofs").status_code == 400
    operator = old.register_client(f"ops-{uuid.uuid4().hex[:6]}", scope=OPERATOR_SCOPE)
    with old.client_with(operator) as client:  # an operator is no partner of this request
        assert client.get("/audit/proofs", params={"request": request_id}).status_code == 404
