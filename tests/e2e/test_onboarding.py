"""Plan-year onboarding between two payer processes: the new payer submits its members to
the old payer's ``$bulk-member-match``, exports the matched members' histories and imports
them with Provenance; by API and by ``payerbridge onboard``, which resumes a run rather
than repeat it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import (
    WITHHELD_UNDER_REGULAR,
    a_coverage,
    a_member_reaching_sensitive_shared_data,
    a_patient,
)
from tests.servers import ServerProcess, new_key

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
PARTNER = "oldplan"


def plain_member(pid: str, given: str, family: str, birth: str, member_id: str) -> list[Any]:
    patient = a_patient(pid, given=given, family=family, birth_date=birth, member_id=member_id)
    condition = {
        "resourceType": "Condition",
        "id": f"{pid}-asthma",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"text": "asthma"},
    }
    coverage = a_coverage(f"{pid}-cov", patient=pid, member_id=member_id, subscriber_id=member_id)
    return [patient, coverage, condition]


@pytest.fixture
def payers(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> tuple[ServerProcess, ServerProcess]:
    # Noor's record holds a document we cannot segment: a regular consent cannot be honoured.
    document = {
        "resourceType": "DocumentReference",
        "id": "noor-note",
        "status": "current",
        "subject": {"reference": "Patient/noor"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}],
    }
    resources = [
        *a_member_reaching_sensitive_shared_data("p1").values(),
        *plain_member("luis", "Luis", "Ortega", "1975-07-21", "M456"),
        *plain_member("noor", "Noor", "Haddad", "1991-11-30", "M789"),
        document,
    ]
    data = tmp_path / "old.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    old = server(
        "old",
        env={"PAYERBRIDGE_ORG_NPI": OLD_NPI, "PAYERBRIDGE_ORG_NAME": "Old Plan"},
        import_files=[data],
    )
    new = server(
        "new",
        env={
            "PAYERBRIDGE_ORG_NPI": NEW_NPI,
            "PAYERBRIDGE_ORG_NAME": "New Plan",
            "PAYERBRIDGE_ONBOARDING_CHUNK_MEMBERS": "2",  # two round trips for four members
        },
    )
    old.trust(new, "newplan", npi=NEW_NPI)
    with new.client() as client:
        registered = client.post(
            "/partners",
            json={
                "id": PARTNER,
                "name": "Old Plan",
                "npi": OLD_NPI,
                "base_url": old.fhir_base,
                "client_id": "newplan",
            },
        )
        assert registered.status_code == 201, registered.text
    return old, new


def member(
    given: str,
    family: str,
    birth: str,
    gender: str,
    old_member: str,
    new_member: str,
    *,
    subscriber: str | None = None,
    policy: str = "sensitive",
    period: tuple[str, str] = ("2026-01-01", "2099-01-01"),
) -> dict[str, Any]:
    return {
        "member": {"given": [given], "family": family, "birth_date": birth, "gender": gender},
        "old_coverage": {"member_id": old_member, "subscriber_id": subscriber or old_member},
        "new_coverage": {"member_id": new_member, "start": "2027-01-01"},
        "consent": {
            "policy": policy,
            "start": period[0],
            "end": period[1],
            "source_reference": f"DocumentReference/optin-{new_member}",
        },
    }


FOUR = [
    member("Ana", "Garcia", "1980-02-03", "female", "M123", "N-ANA", subscriber="S1",
           policy="regular"),
    member("Luis", "Ortega", "1975-07-21", "male", "M456", "N-LUIS"),
    member("Zora", "Quinlan", "1961-12-30", "female", "Z999", "N-ZORA"),
    # A regular consent, and a record that cannot be segmented: the old payer cannot honour it.
    member("Noor", "Haddad", "1991-11-30", "female", "M789", "N-NOOR", policy="regular"),
]  # fmt: skip


def wait_done(client: Any, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        report: dict[str, Any] = client.get(location).json()
        if report["status"] != "running":
            return report
        time.sleep(0.3)
    raise AssertionError(f"the onboarding did not finish: {report}")


def imported(payer: ServerProcess) -> list[dict[str, Any]]:
    """What the new payer stored from the old one."""
    from sqlalchemy import select

    from payerbridge.store.members import opened_resource
    from payerbridge.store.tables import fhir_resources

    with payer.platform() as platform, platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.body).where(
                fhir_resources.c.source.like("onboarding:%")
            )
        ).all()
        return [opened_resource(connection, row.ref, row.body) for row in rows]


def test_four_members_onboarded_by_api_with_their_results_and_histories(
    payers: tuple[ServerProcess, ServerProcess],
) -> None:
    _, new = payers
    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        report = wait_done(client, answer.headers["Location"])
        assert report["status"] == "completed", report
        assert report["results"] == {
            "match": 2,
            "nomatch": 1,
            "consentconstraint": 1,
            "withdrawn": 0,
            "notexported": 0,
            "pending": 0,
        }
        assert report["imported_members"] == 2 and report["chunks"] == {"total": 2, "done": 2}
        items = client.get(f"{answer.headers['Location']}/members").json()["items"]
        assert [(i["member_id"], i["result"]) for i in items] == [
            ("N-ANA", "match"),
            ("N-LUIS", "match"),
            ("N-ZORA", "nomatch"),
            ("N-NOOR", "consentconstraint"),
        ]
        # Each member's end carries its reason, as an exchange's does.
        assert [i["reason"]["code"] for i in items] == [
            "completed",
            "completed",
            "no-match",
            "consent-constraint",
        ]
    stored = imported(new)
    sources = {r["meta"]["source"].rsplit("/fhir/", 1)[1] for r in stored if "source" in r["meta"]}
    # Ana's record as her regular consent lets it go, Luis's whole record; nothing else.
    ana = set(a_member_reaching_sensitive_shared_data("p1")) - WITHHELD_UNDER_REGULAR
    luis = {"Patient/luis", "Coverage/luis-cov", "Condition/luis-asthma"}
    records = ana | luis
    assert records <= sources
    # Beside them, the old payer's transmitter Provenance, one per member, kept as received.
    transmitters = sources - records
    assert len(transmitters) == 2 and all(r.startswith("Provenance/") for r in transmitters)
    assert not sources & WITHHELD_UNDER_REGULAR
    assert sum(1 for r in stored if r["resourceType"] == "Patient") == 2
    # Under our ids, with the old payer's Provenance kept and ours added per member.
    ids = {f"{r['resourceType']}/{r['id']}" for r in stored}
    assert not ids & (ana | luis)
    receipts = [
        r
        for r in stored
        if r["resourceType"] == "Provenance" and r.get("activity", {}).get("coding")
    ]
    assert len(receipts) == 2
    for receipt in receipts:
        assert {t["reference"] for t in receipt["target"]} <= ids

    # The same Idempotency-Key answers with the run it started, and repeats nothing.
    with new.client() as client:
        key = new_key()
        first = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR[1:2]}, headers=key
        )
        again = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR[1:2]}, headers=key
        )
        assert first.json()["id"] == again.json()["id"]
        wait_done(client, first.headers["Location"])
        other = new.register_client("other", scope="payerbridge/exchanges")
        with new.client_with(other) as stranger:
            assert stranger.get(first.headers["Location"]).status_code == 404


def test_a_member_who_revokes_the_opt_in_while_the_onboarding_runs_is_not_imported(
    payers: tuple[ServerProcess, ServerProcess],
) -> None:
    _, new = payers
    members = [FOUR[1], FOUR[2], FOUR[0], FOUR[3]]  # Ana and Noor in the second round trip
    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": members}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        [consent] = client.get("/consents", params={"member_id": "N-ANA"}).json()
        assert client.post(f"/consents/{consent['id']}/$revoke").status_code == 200
        report = wait_done(client, answer.headers["Location"])
        assert report["results"]["withdrawn"] == 1 and report["results"]["match"] == 1
        items = client.get(f"{answer.headers['Location']}/members").json()["items"]
        assert items[2]["reason"]["code"] == "withdrawn"
        assert {k: items[2][k] for k in ("member_id", "result", "imported")} == {
            "member_id": "N-ANA",
            "result": "withdrawn",
            "imported": 0,
        }
        assert items[3]["result"] == "consentconstraint"  # asked about without her
    patients = [r for r in imported(new) if r["resourceType"] == "Patient"]
    assert [p["name"][0]["given"] for p in patients] == [["Luis"]]


def test_bad_onboardings_are_refused_saying_which_member_and_why(
    payers: tuple[ServerProcess, ServerProcess],
) -> None:
    _, new = payers
    no_consent = {k: v for k, v in FOUR[0].items() if k != "consent"}
    twice = [FOUR[1], FOUR[1]]
    with new.client() as client:
        for members, text in (
            ([no_consent], "line 1: consent"),
            (twice, "line 2: member N-LUIS is also on line 1"),
            ([{**FOUR[0], "old_payer": "elsewhere"}], "line 1: old_payer"),
        ):
            answer = client.post(
                "/onboardings", json={"partner": PARTNER, "members": members}, headers=new_key()
            )
            assert answer.status_code == 400, answer.text
            assert any(text in i["details"]["text"] for i in answer.json()["issue"]), answer.text
        unknown = client.post(
            "/onboardings", json={"partner": "nobody", "members": FOUR[:1]}, headers=new_key()
        )
        assert unknown.status_code == 422
        assert (
            client.post("/onboardings", json={"partner": PARTNER, "members": FOUR[:1]}).status_code
            == 400
        )


def test_the_cli_onboards_a_file_and_run_again_reports_the_same_run(
    payers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    _, new = payers
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"\n".join(orjson.dumps(m) for m in FOUR[1:3]) + b"\n")
    args = ("onboard", "--partner", PARTNER, "--members", str(members))
    first = new.cli(*args)
    assert first.returncode == 0, first.stderr
    assert "match" in first.stdout and "completed" in first.stdout
    before = len(imported(new))
    again = new.cli(*args)
    assert again.returncode == 0, again.stderr
    assert len(imported(new)) == before  # the run is the same: nothing imported twice
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(orjson.dumps(FOUR[1]) + b"\n{not json\n")
    refused = new.cli("onboard", "--partner", PARTNER, "--members", str(broken))
    assert refused.returncode == 2 and "line 2: not JSON" in refused.stderr


def test_an_onboarding_killed_mid_run_carries_on_when_the_command_is_run_again(
    payers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    """The new payer's CLI alone (no server of its own running): SIGKILLed after its first
    round trip, the same command recovers the run and finishes it, importing nobody twice."""
    _, new = payers
    new.stop()
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"\n".join(orjson.dumps(m) for m in FOUR) + b"\n")
    env = {**os.environ, **new.env, "PAYERBRIDGE_ONBOARDING_CHUNK_MEMBERS": "1"}
    command = [
        sys.executable, "-m", "payerbridge", "onboard", "--partner", PARTNER,
        "--members", str(members), "--data-dir", str(new.data_dir),
    ]  # fmt: skip
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not imported(new):  # the first member's history is in
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "nothing was imported in time"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
    patients_then = sum(1 for r in imported(new) if r["resourceType"] == "Patient")
    assert patients_then == 1
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "completed" in again.stdout
    patients = [r for r in imported(new) if r["resourceType"] == "Patient"]
    assert sorted(p["name"][0]["given"][0] for p in patients) == ["Ana", "Luis"]
