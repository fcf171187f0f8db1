"""What the onboarding tests share (test_onboarding.py by API, test_onboarding_cli.py by
``payerbridge onboard``): two payer processes, the old one trusting the new, and the four
members the new payer onboards. Two modules so that two test workers take them (issue 69)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.builders import a_coverage, a_member_reaching_sensitive_shared_data, a_patient
from tests.servers import ServerProcess

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


def two_payers(
    server: Callable[..., ServerProcess],
    tmp_path: Path,
    new_env: dict[str, str] | None = None,
) -> tuple[ServerProcess, ServerProcess]:
    """The old payer holding Ana (p1), Luis and Noor, the new one with it as a partner
    (``new_env``: more of the new one's settings)."""
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
            **(new_env or {}),
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


def old_payers_patients(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The old payer's Patients among what was stored: kept as source records, each linked
    to the member's one Patient at the plan (ADR 0054), which is stored beside them when
    the plan held none for the member."""
    from payerbridge.fhir.resources import is_source_record

    return [r for r in stored if r["resourceType"] == "Patient" and is_source_record(r)]


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
