"""The plan's FHIR server as a destination, end to end (ADR 0053): the platform, an old
payer and the sandbox FHIR server (``payerbridge sandbox fhir-source``) as real
processes. What an exchange received arrives at the destination, counted per type
against what the old payer sent; a replay writes nothing twice; a destination that is
stopped makes the delivery wait until it is back; one that refuses ends it ``refused``.
The destination holds every reference as HAPI does: what was received for a member
refers to her one Patient there, hers when it has her, else the one we create."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from payerbridge.fhir.codes import RECORD_ROLE, V2_0203
from payerbridge.fhir.completeness import SOURCE_UNAVAILABLE, Gap, outcome_entry
from payerbridge.fhir.resources import compartment_patient, is_member_record
from payerbridge.security.model import OPERATOR_SCOPE
from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.onboarding import FOUR, PARTNER, imported, two_payers, wait_done
from tests.e2e.test_exchange import start_payers, submit, switcher_to, wait_terminal
from tests.processes import ForkedProcess
from tests.servers import (
    ServerProcess,
    free_port,
    new_key,
    new_signing_key,
    probe,
    public_jwk,
)

MB = {"system": V2_0203, "code": "MB"}


@dataclass
class Destination:
    """The sandbox FHIR server, stopped and started again on its port."""

    port: int
    jwks: Path
    log: Path
    sources: Path  # a platform's sources file naming it as its destination
    process: ForkedProcess | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ["sandbox", "fhir-source", "--port", str(self.port), "--members", "2"]
        args += ["--client-id", "platform", "--jwks-file", str(self.jwks)]
        env = {**os.environ, "COLUMNS": "1000"}
        self.process = ForkedProcess(args, env=env, stdout=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if probe(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"the FHIR server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None

    def written(self) -> dict[str, Any]:
        summary: dict[str, Any] = httpx.get(f"{self.base}/fhir/_written", timeout=10).json()
        return summary

    def records(self, kind: str) -> list[dict[str, Any]]:
        """What it took as a destination of ``kind``, as it holds them."""
        found: list[dict[str, Any]] = httpx.get(
            f"{self.base}/_control/written/{kind}", timeout=10
        ).json()
        return found

    def control(self, mode: str) -> None:
        httpx.post(f"{self.base}/_control", json={"mode": mode}, timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 20, 17, date.today() - timedelta(days=1), switchers=5)
    return out


@pytest.fixture(scope="module")
def payers(
    module_server: Callable[..., ServerProcess],
    network: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess, dict[str, Any], Destination]]:
    home = tmp_path_factory.mktemp("destination")
    key = new_signing_key()
    (home / "jwks.json").write_bytes(orjson.dumps({"keys": [public_jwk(key)]}))
    (home / "platform.jwk").write_bytes(orjson.dumps({**key.as_dict(private=True), "kid": key.kid}))
    sources = home / "sources.toml"
    destination = Destination(free_port(), home / "jwks.json", home / "fhir.log", sources)
    destination.start()
    sources.write_text(
        "[[destination]]\n"
        'id = "plan-fhir"\n'
        f'base_url = "{destination.base}/fhir"\n'
        "budget_seconds = 300\n"
        "max_entries = 40\n"
        f'auth = {{ client_id = "platform", key_file = "{home / "platform.jwk"}" }}\n'
    )
    old, new, info = start_payers(
        module_server, network, new_env={"PAYERBRIDGE_SOURCES_FILE": str(sources)}
    )
    try:
        yield old, new, info, destination
    finally:
        destination.stop()


def _delivered(client: Any, location: str, run: int = 0, timeout: float = 90) -> dict[str, Any]:
    """The exchange once its run's delivery has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exchange: dict[str, Any] = client.get(location).json()
        ours = [d for d in exchange["delivery"] if d["run"] == run]
        if ours and ours[0]["state"] in ("delivered", "refused", "failed"):
            return exchange
        time.sleep(0.2)
    raise AssertionError(f"the delivery did not end: {exchange['delivery']}")


def _sent(exchange: dict[str, Any]) -> dict[str, int]:
    """What the old payer sent, per type, as the exchange counted it on arrival."""
    arrival = [t for t in exchange["history"] if t["to"] == "normalized"][-1]
    counts: dict[str, int] = arrival["detail"]["resources"]
    return counts


def test_what_an_exchange_received_arrives_and_a_replay_writes_nothing_twice(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any], Destination],
    network: Path,
    proxies: Callable[..., tuple[str, Path]],
    tmp_path: Path,
) -> None:
    old, new, info, destination = payers
    operator = new.register_client("ops", scope=OPERATOR_SCOPE)
    with new.client() as client:
        first = _delivered(client, submit(client, switcher_to(network, 0)["request"]))
    assert first["state"] == "completed", first
    (delivery,) = first["delivery"]
    assert delivery["state"] == "delivered" and delivery["destination"] == "plan-fhir"
    sent = _sent(first)
    assert sent["Patient"] == 1 and sent["Provenance"] >= 1 and len(sent) > 3, sent
    # Every resource received, our Provenance included, and the member's one Patient
    # (ADR 0054): ours, since the plan holds none for her, created there on her member
    # id, birth date and gender, since the destination has no one who agrees.
    assert first["completeness"]["member_patient"]["how"] == "derived-none"
    assert delivery["written"] == {**sent, "Patient": sent["Patient"] + 1}
    assert destination.written()["types"] == delivery["written"]  # as it counts itself
    request = switcher_to(network, 0)["request"]
    (one,) = [p for p in destination.records("Patient") if _role(p) == "member"]
    assert one["identifier"][0]["system"] == _member_ids(new)
    assert one["identifier"][0]["value"] == request["new_coverage"]["member_id"]
    assert one["birthDate"] == request["member"]["birth_date"]
    _all_hers(destination, destination.written()["types"], one["id"])
    # Each labelled as a regular consent would judge it (ADR 0052): none unlabelled.
    labels = destination.written()["confidentiality"]
    assert "none" not in labels and labels.get("N"), labels

    # An answer that says it is incomplete ends partial: still delivered; asked again,
    # what the destination has from us unchanged is not written again.
    outcome = tmp_path / "outcome.json"
    gap = Gap("claims", ("ExplanationOfBenefit",), SOURCE_UNAVAILABLE, "down", True)
    outcome.write_text(json.dumps(outcome_entry([gap])))
    proxied, _ = proxies(old.base_url, outcome=str(outcome))
    old_info = info["payers"][0]
    with new.client() as client:
        partner = {"id": "gappy", "name": old_info["name"], "npi": old_info["npi"]}
        partner |= {"base_url": proxied, "client_id": "platform"}
        partner["token_url"] = f"{old.base_url}/auth/token"
        assert client.post("/partners", json=partner).status_code == 201
        location = submit(client, switcher_to(network, 1, "gappy")["request"])
        partial = _delivered(client, location)
        assert partial["state"] == "partial", partial
        before = destination.written()
        headers = {"Authorization": f"Bearer {operator}", "Idempotency-Key": "again-1"}
        replay = client.post(f"/exchanges/{partial['id']}/$replay", headers=headers)
        assert replay.status_code == 200, replay.text
        again = _delivered(client, location, run=1)
    runs = {d["run"]: d for d in again["delivery"]}
    assert runs[1]["state"] == "delivered" and runs[1]["unchanged"] > 0
    after = destination.written()
    # The old payer makes a new Provenance for each disclosure, and ours records each
    # receipt: those are new. Everything else was there unchanged: no new version.
    assert set(runs[1]["written"]) <= {"Provenance"}, runs[1]
    for kind, count in before["types"].items():
        if kind != "Provenance":
            assert after["types"][kind] == count, kind
            assert after["versions"][kind] == before["versions"][kind], kind


def _role(patient: dict[str, Any]) -> str | None:
    tags = (patient.get("meta") or {}).get("tag") or []
    return next((t["code"] for t in tags if t.get("system") == RECORD_ROLE), None)


def _member_ids(new: ServerProcess) -> str:
    """The system of the plan's member ids (``fhir.member_match.member_id_system``)."""
    return f"{new.base_url}/fhir/NamingSystem/member-id"


def _all_hers(destination: Destination, kinds: Iterable[str], patient_id: str) -> None:
    """Every record of a member there is in ``patient_id``'s compartment (the sources'
    Patients link to her): the references the destination itself settled."""
    for kind in kinds:
        for resource in destination.records(kind):
            if kind == "Patient" and _role(resource) == "source":
                assert resource["link"][0]["other"]["reference"] == f"Patient/{patient_id}"
            elif kind not in ("Patient", "Provenance", "Organization", "Practitioner"):
                assert compartment_patient(resource) == patient_id, resource["resourceType"]


def test_the_member_the_destination_holds_gets_her_records_and_her_sister_is_left_alone(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any], Destination],
    network: Path,
) -> None:
    """The plan's FHIR server holds the member, and her sister on the same card (another
    birth date): what was received for her goes to her, and nothing to the sister."""
    _old, new, _info, destination = payers
    request = switcher_to(network, 4)["request"]
    member, card = request["member"], request["new_coverage"]["member_id"]
    mb = {"system": _member_ids(new), "value": card, "type": {"coding": [MB]}}
    for rid, born in (("plan-her", member["birth_date"]), ("plan-sister", "2019-05-01")):
        patient = {"resourceType": "Patient", "id": rid, "identifier": [mb], "birthDate": born}
        patient["gender"] = member["gender"]
        add = httpx.post(f"{destination.base}/_control/records", json={"resource": patient})
        add.raise_for_status()
    before = {kind: _ids(destination, kind) for kind in ("Patient", "ExplanationOfBenefit")}
    with new.client() as client:
        done = _delivered(client, submit(client, request))
    (delivery,) = done["delivery"]
    assert delivery["state"] == "delivered", delivery
    sent = _sent(done)  # her Patient, posted as a conditional create, was found there:
    assert delivery["written"] == sent  # posted, not written (the destination answered 200)
    (source,) = [p for p in destination.records("Patient") if p["id"] not in before["Patient"]]
    assert _role(source) == "source"  # the old payer's, linked to her
    assert source["link"][0]["other"]["reference"] == "Patient/plan-her"
    claims = [
        c
        for c in destination.records("ExplanationOfBenefit")
        if c["id"] not in before["ExplanationOfBenefit"]
    ]
    assert claims and {compartment_patient(c) for c in claims} == {"plan-her"}


def _ids(destination: Destination, kind: str) -> set[str]:
    return {r["id"] for r in destination.records(kind)}


def test_an_onboarding_delivers_what_it_stored(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any], Destination],
    server: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    """A plan year's members onboarded in bulk go on to the destination as well."""
    *_, destination = payers
    _old, new = two_payers(
        server, tmp_path, new_env={"PAYERBRIDGE_SOURCES_FILE": str(destination.sources)}
    )
    before = destination.written()["types"]
    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        location = answer.headers["Location"]
        assert wait_done(client, location)["status"] == "completed"
        deadline = time.monotonic() + 60
        while not (report := client.get(location).json())["delivery"] or report["delivery"][0][
            "state"
        ] not in ("delivered", "refused", "failed"):
            assert time.monotonic() < deadline, report["delivery"]
            time.sleep(0.2)
    (delivery,) = report["delivery"]
    kept = imported(new)
    # Ana and Luis (the other two were not imported): the old payer's Patient of each, and
    # our Patient for each, created there as the destination has no one who agrees.
    assert sum(1 for r in kept if is_member_record(r)) == 2
    stored = Counter(r["resourceType"] for r in kept)
    assert stored["Patient"] == 4, stored
    assert delivery["state"] == "delivered" and delivery["written"] == dict(stored), delivery
    after = destination.written()["types"]
    grown = {kind: after[kind] - before.get(kind, 0) for kind in after}
    assert {k: n for k, n in grown.items() if n} == dict(stored)


def test_a_stopped_destination_makes_the_delivery_wait_and_one_that_refuses_ends_it(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any], Destination],
    network: Path,
) -> None:
    _old, new, _info, destination = payers
    destination.stop()
    with new.client() as client:
        location = submit(client, switcher_to(network, 2)["request"])
        assert wait_terminal(client, location)["state"] == "completed"
        deadline = time.monotonic() + 60
        while (waiting := client.get(location).json()["delivery"]) == [] or waiting[0][
            "state"
        ] != "waiting":
            assert time.monotonic() < deadline, waiting
            time.sleep(0.2)
        assert waiting[0]["next_attempt_at"] is not None
        destination.start()  # an empty store: the platform's token is unknown to it
        done = _delivered(client, location, timeout=120)
        (delivery,) = done["delivery"]
        assert delivery["state"] == "delivered" and delivery["attempts"] > 1
        sent = _sent(done)  # and the member's one Patient, ours
        assert destination.written()["types"] == {**sent, "Patient": sent["Patient"] + 1}

        destination.control("refuse-writes")
        refused = _delivered(client, submit(client, switcher_to(network, 3)["request"]))
    (delivery,) = refused["delivery"]
    assert delivery["state"] == "refused", delivery
    assert delivery["reason_code"] == "destination-refused"
    assert delivery["issue_codes"] == ["processing"]
    assert delivery["written"] == {}
