"""Incremental onboardings end to end, by ``payerbridge onboard``: a first run moves the
members' whole records; a resource the old payer records afterwards arrives in a second
run asked ``--since last`` (``_since`` on ``$davinci-data-export``), under the member's
record as the first run stored it, and nothing older is sent again; the member whose
record did not change is said to have nothing new (issue 54, ADR 0040)."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.fhir.codes import V2_0203
from payerbridge.fhir.resources import is_member_record, is_source_record
from tests.builders import a_coverage
from tests.e2e.onboarding import NEW_NPI, OLD_NPI, PARTNER, member, plain_member, wait_done
from tests.e2e.test_disclosure import follow
from tests.e2e.test_exchange import submit, wait_terminal
from tests.servers import ServerProcess, new_key

# Two members the old payer holds: each a Patient, a Coverage and a Condition.
RECORDS = {
    "luis": ("Luis", "Ortega", "1975-07-21", "M456"),
    "mara": ("Mara", "Ibsen", "1968-03-09", "M321"),
}
MEMBERS = [
    member("Luis", "Ortega", "1975-07-21", "male", "M456", "N-LUIS"),
    member("Mara", "Ibsen", "1968-03-09", "female", "M321", "N-MARA"),
]


@pytest.fixture(scope="module")
def payers(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> tuple[ServerProcess, ServerProcess]:
    data = tmp_path_factory.mktemp("old") / "old.ndjson"
    resources = [r for pid, card in RECORDS.items() for r in plain_member(pid, *card)]
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    old = module_server(
        "old",
        env={"PAYERBRIDGE_ORG_NPI": OLD_NPI, "PAYERBRIDGE_ORG_NAME": "Old Plan"},
        import_files=[data],
    )
    new = module_server(
        "new", env={"PAYERBRIDGE_ORG_NPI": NEW_NPI, "PAYERBRIDGE_ORG_NAME": "New Plan"}
    )
    old.trust(new, "newplan", npi=NEW_NPI)
    with new.client() as client:
        registered = client.post(
            "/partners",
            json={"id": PARTNER, "name": "Old Plan", "npi": OLD_NPI,
                  "base_url": old.fhir_base, "client_id": "newplan"},
        )  # fmt: skip
        assert registered.status_code == 201, registered.text
    return old, new


def _report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def _stored(payer: ServerProcess) -> list[tuple[str, dict[str, Any]]]:
    """What the payer holds from onboardings: each resource with the run that last wrote it."""
    from sqlalchemy import select

    from payerbridge.store.members import opened_resource
    from payerbridge.store.tables import fhir_resources

    with payer.platform() as platform, platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.source, fhir_resources.c.body).where(
                fhir_resources.c.source.like("onboarding:%")
            )
        ).all()
        return [
            (row.source.split(":", 1)[1], opened_resource(connection, row.ref, row.body))
            for row in rows
        ]


def _sources(stored: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Where the old payer kept each resource held (our receipts have no source)."""
    return [r["meta"]["source"].rsplit("/fhir/", 1)[1] for _, r in stored if "source" in r["meta"]]


def test_an_onboarding_since_the_last_brings_only_what_changed_and_says_who_has_nothing_new(
    payers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    old, new = payers
    members = tmp_path / "members.ndjson"
    members.write_bytes(
        b"".join(orjson.dumps(m, option=orjson.OPT_APPEND_NEWLINE) for m in MEMBERS)
    )
    args = ("onboard", "--partner", PARTNER, "--members", str(members), "--json")

    # What since takes: an instant with its zone, or last once there is a last.
    refused = new.cli(*args, "--since", "2027-01-01")
    assert refused.returncode == 2 and "--since must be a FHIR instant" in refused.stderr
    with new.client() as client:
        for since, text in (
            ("soon", "since must be a FHIR instant"),
            ("last", f"no completed onboarding with '{PARTNER}' received data"),
        ):
            bad = client.post(
                "/onboardings",
                json={"partner": PARTNER, "members": MEMBERS, "since": since},
                headers=new_key(),
            )
            assert bad.status_code == 400 and text in bad.text, bad.text

    first = _report(new.cli(*args))
    assert first["status"] == "completed" and first["results"]["match"] == 2, first
    assert first["since"] is None and first["nothing_new"] is None
    assert first["received_at"] is not None
    held = _sources(_stored(new))
    assert Counter(ref.split("/")[0] for ref in held)["Patient"] == 2

    # The old payer records a new Condition for Luis.
    condition = {
        "resourceType": "Condition",
        "id": "luis-migraine",
        "subject": {"reference": "Patient/luis"},
        "code": {"text": "migraine"},
    }
    changes = tmp_path / "changes.ndjson"
    changes.write_bytes(orjson.dumps(condition))
    imported = old.cli("import", str(changes))
    assert imported.returncode == 0, imported.stderr

    second = _report(new.cli(*args, "--since", "last"))
    assert second["id"] != first["id"] and second["status"] == "completed", second
    assert second["since"] == first["received_at"] and second["received_at"] > first["received_at"]
    assert second["results"]["match"] == 2 and second["nothing_new"] == 1
    # Its exports carried each member's Patient (PDex sends it always) and the new
    # Condition, with the old payer's Provenance and ours: nothing older.
    stored = _stored(new)
    sent = Counter(
        r["resourceType"] for run, r in stored if run == second["id"] and not is_member_record(r)
    )
    assert {kind: n for kind, n in sent.items() if kind != "Provenance"} == {
        "Patient": 2,
        "Condition": 1,
    }
    # Held once each: the new Condition added, nothing older twice, nothing removed.
    now_held = _sources(stored)
    assert len(now_held) == len(set(now_held))
    assert set(held) <= set(now_held)
    added = {ref for ref in set(now_held) - set(held) if not ref.startswith("Provenance/")}
    assert added == {f"Condition/{condition['id']}"}
    (patient,) = [r for _, r in stored if r["meta"].get("source", "").endswith("/Patient/luis")]
    (kept,) = [r for _, r in stored if r["meta"].get("source", "").endswith(condition["id"])]
    # Under the member's one Patient, as the first run kept it (ADR 0054): the old
    # payer's Patient is a source record linked to it.
    (one,) = [link["other"]["reference"] for link in patient["link"]]
    assert kept["subject"]["reference"] == one != f"Patient/{patient['id']}"

    with new.client() as client:
        items = client.get(f"/onboardings/{second['id']}/members").json()["items"]
        assert [(i["reason"]["code"], i["changed"]) for i in items] == [
            ("completed", 1),
            ("nothing-new", 0),
        ]
        assert items[1]["reason"]["text"] == (
            f"matched; the old payer has nothing new since {first['received_at']}"
        )


def test_an_onboarded_member_the_plan_held_has_her_records_under_the_plans_own_patient(
    payers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    """ADR 0054: the plan already held Mara (its own Patient with her member id, typed MB,
    agreeing on birth date and gender): her onboarded records land in that Patient's
    compartment, her old payer's Patient kept beside it as a source linked ``seealso``,
    and the plan's own client reads them all in its ``$everything``; a later exchange of
    her from the same old payer updates them in place, not a copy, nor a conflict."""
    old, new = payers
    mara = member("Mara", "Ibsen", "1968-03-09", "female", "M321", "N-IBSEN")
    patient = {
        "resourceType": "Patient",
        "id": "plan-mara",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MB"}]},
                "system": "https://new.example/member-id",
                "value": "N-IBSEN",
            }
        ],
        "name": [{"family": "Ibsen", "given": ["Mara"]}],
        "birthDate": "1968-03-09",
        "gender": "female",
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "plan-cov-mara",
        "status": "active",
        "beneficiary": {"reference": "Patient/plan-mara"},
        "payor": [{"display": "the plan"}],
    }
    loaded = tmp_path / "plan.ndjson"
    loaded.write_bytes(orjson.dumps(patient) + b"\n" + orjson.dumps(coverage))
    with new.platform() as platform:
        platform.import_member_files([loaded], progress=lambda _path, _size: None)

    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": [mara]}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        report = wait_done(client, answer.headers["Location"])
        assert report["status"] == "completed" and report["results"]["match"] == 1, report
        assert report["member_patients"] == {"plan": 1}
        (item,) = client.get(f"{answer.headers['Location']}/members").json()["items"]
    chosen = item["member_patient"]
    assert (chosen["patient"], chosen["how"]) == ("Patient/plan-mara", "plan")
    assert not any(d["identity"] for d in chosen["differences"])
    assert "Ibsen" not in orjson.dumps(item).decode()  # names fields, never values

    own = new.register_client("plan-systems", npi=NEW_NPI, scope="system/*.rs")
    with new.client_with(own) as client:
        pages = follow(client, "/fhir/Patient/plan-mara/$everything?_count=5")
    everything = [
        e["resource"] for page in pages for e in page["entry"] if e["search"]["mode"] != "outcome"
    ]
    by_source = {
        r["meta"]["source"].rsplit("/fhir/", 1)[1]: r
        for r in everything
        if (r.get("meta") or {}).get("source", "").startswith(payers[0].fhir_base)
    }
    # Her record at the old payer, received: under the plan's Patient, nothing of it apart.
    assert {"Patient/mara", "Coverage/mara-cov", "Condition/mara-asthma"} <= set(by_source)
    assert by_source["Condition/mara-asthma"]["subject"] == {"reference": "Patient/plan-mara"}
    assert by_source["Coverage/mara-cov"]["beneficiary"] == {"reference": "Patient/plan-mara"}
    source = by_source["Patient/mara"]
    assert source["link"] == [{"other": {"reference": "Patient/plan-mara"}, "type": "seealso"}]
    assert is_source_record(source)
    keys = {f"{r['resourceType']}/{r['id']}" for r in everything}
    assert {"Patient/plan-mara", "Coverage/plan-cov-mara"} <= keys
    (plans,) = [r for r in everything if r["id"] == "plan-mara"]
    assert "link" not in plans  # the plan's own Patient is never changed by received data
    assert not any(is_member_record(r) for r in everything)  # no Patient of ours beside it

    # The old payer cancels her Coverage; an exchange of her from it updates what the
    # onboarding kept (the same ids, the same compartment), the change no conflict.
    cancelled = {**a_coverage("mara-cov", patient="mara", member_id="M321",
                              subscriber_id="M321"), "status": "cancelled"}  # fmt: skip
    changes = tmp_path / "cancelled.ndjson"
    changes.write_bytes(orjson.dumps(cancelled))
    assert old.cli("import", str(changes)).returncode == 0
    with new.client() as client:
        exchange = wait_terminal(client, submit(client, {**mara, "old_payer": PARTNER}))
    assert exchange["state"] == "completed", exchange.get("completeness")
    assert exchange["imported_patient_id"] == "plan-mara"
    assert exchange["completeness"]["member_patient"] == {
        "patient": "Patient/plan-mara",
        "how": "plan",
    }
    with new.client_with(own) as client:
        pages = follow(client, "/fhir/Patient/plan-mara/$everything?_count=5")
    again = [
        e["resource"] for page in pages for e in page["entry"] if e["search"]["mode"] != "outcome"
    ]
    sources = [
        r["meta"]["source"].rsplit("/fhir/", 1)[1]
        for r in again
        if (r.get("meta") or {}).get("source", "").startswith(old.fhir_base)
        and r["resourceType"] != "Provenance"
    ]
    assert len(sources) == len(set(sources))  # each of her resources held once
    (coverage,) = [r for r in again if r["meta"].get("source", "").endswith("/Coverage/mara-cov")]
    assert coverage["status"] == "cancelled"
    assert coverage["id"] == by_source["Coverage/mara-cov"]["id"]
