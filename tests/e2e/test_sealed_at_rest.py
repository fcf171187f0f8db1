"""Nothing of a member lies in the clear at rest (issue 67, ADR 0044): after a population
is loaded, one member exchanged (``$member-match`` and ``$everything``) and others
onboarded (``$bulk-member-match`` and a bulk export), neither payer's data dir (every
file, raw bytes: the databases, their write-ahead logs, the logs) nor, on PostgreSQL,
any table of its database (ours and DBOS's) holds a member's name, birth date, member id
or SSN."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.builders import a_coverage, a_patient
from tests.conftest import BACKEND
from tests.servers import ServerProcess, new_key

OLD_NPI, NEW_NPI = "1245319599", "1234567893"
PARTNER = "oldplan"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"

# (id, given, family, birth date, member id, SSN): spelled so that nothing else matches.
POPULATION = [
    ("qa", "Quennevieve", "Zarbulonski", "1938-04-17", "QZMB71403", "912834756"),
    ("qb", "Thaddeusz", "Vorkelhampt", "1941-09-23", "QZMB82514", "923845167"),
    ("qc", "Ysoldrine", "Brackenwold", "1952-11-06", "QZMB93625", "934856278"),
]


def _population(path: Path) -> Path:
    resources: list[dict[str, Any]] = []
    for pid, given, family, birth, member_id, ssn in POPULATION:
        patient = a_patient(pid, given=given, family=family, birth_date=birth, member_id=member_id)
        patient["identifier"].append({"system": SSN_SYSTEM, "value": ssn})
        patient["address"] = [{"line": [f"{pid} {family} Lane"], "city": "Sealby"}]
        condition = {
            "resourceType": "Condition",
            "id": f"{pid}-asthma",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"text": f"asthma of {given} {family}"},
        }
        coverage = a_coverage(
            f"{pid}-cov", patient=pid, member_id=member_id, subscriber_id=member_id
        )
        resources += [patient, coverage, condition]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    return path


def _request(given: str, family: str, birth: str, member_id: str, new_id: str) -> dict[str, Any]:
    return {
        "member": {"given": [given], "family": family, "birth_date": birth, "gender": "female"},
        "old_coverage": {"member_id": member_id, "subscriber_id": member_id},
        "new_coverage": {"member_id": new_id, "start": "2027-01-01"},
        "consent": {
            "policy": "sensitive",
            "start": "2026-01-01",
            "end": "2099-01-01",
            "source_reference": f"DocumentReference/optin-{new_id}",
        },
    }


def _wait(client: Any, location: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer: dict[str, Any] = client.get(location).json()
        if done(answer):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"did not finish: {answer}")


def _secrets() -> dict[bytes, str]:
    """Each value a member is known by, and what it is (never printed itself)."""
    found: dict[bytes, str] = {}
    for pid, given, family, birth, member_id, ssn in POPULATION:
        for kind, value in (
            ("given name", given),
            ("family name", family),
            ("birth date", birth),
            ("member id", member_id),
            ("SSN", ssn),
            ("SSN", f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}"),
        ):
            for spelled, how in (
                (value.encode("utf-16-le"), ", as UTF-16"),
                (value.lower().encode(), ", in lower case"),
                (value.upper().encode(), ", in upper case"),
                (value.encode(), ""),
            ):
                found[spelled] = f"{pid}'s {kind}{how}"
    return found


def _files_holding(root: Path, secrets: dict[bytes, str]) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        where = path.relative_to(root)
        held = [what for s, what in secrets.items() if s in content]
        found += [f"{where}: {what}" for what in held]
        if held and content.startswith(b"SQLite format 3"):
            found += [f"{where} {place}" for place in _sqlite_tables_holding(path, secrets)]
    return found


def _sqlite_tables_holding(path: Path, secrets: dict[bytes, str]) -> list[str]:
    """Which tables of a SQLite file hold them (to say where to look, beside the bytes)."""
    import sqlite3

    found = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            text = repr(rows).encode()
            found += [f"table {table}: {what}" for s, what in secrets.items() if s in text]
    return found


def _tables_holding(database_url: str, secrets: dict[bytes, str]) -> list[str]:
    """Every row of every table of the database, as PostgreSQL's text of it."""
    import psycopg
    from psycopg import sql

    found = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} AS t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            text = "\n".join(row[0] for row in connection.execute(query)).encode()
            found += [f"{schema}.{table}: {what}" for s, what in secrets.items() if s in text]
    return found


def test_no_member_value_is_at_rest_in_the_clear_after_an_exchange_and_an_onboarding(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    old = server(
        "old",
        env={"PAYERBRIDGE_ORG_NPI": OLD_NPI, "PAYERBRIDGE_ORG_NAME": "Old Plan"},
        import_files=[_population(tmp_path / "population.ndjson")],
    )
    new = server("new", env={"PAYERBRIDGE_ORG_NPI": NEW_NPI, "PAYERBRIDGE_ORG_NAME": "New Plan"})
    old.trust(new, "newplan", npi=NEW_NPI)
    (qa, qb, qc) = [_request(g, f, b, m, f"N-{p}") for p, g, f, b, m, _ in POPULATION]
    qa["old_payer"] = PARTNER
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
        # One member moved by an exchange: $member-match, then $everything.
        answer = client.post("/exchanges", json=qa, headers=new_key())
        assert answer.status_code == 202, answer.text
        exchange = _wait(client, answer.headers["location"], lambda e: e["state"] == "completed")
        assert exchange["imported_patient_id"]
        # Two by an onboarding: $bulk-member-match, then a bulk export of the matched.
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": [qb, qc]}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        report = _wait(client, answer.headers["Location"], lambda r: r["status"] != "running")
        assert report["status"] == "completed" and report["imported_members"] == 2, report
    for payer in (old, new):
        payer.stop()  # what they hold at rest, the write-ahead logs as they were left

    secrets = _secrets()
    found = []
    for name, payer in (("old", old), ("new", new)):
        found += [f"{name} {where}" for where in _files_holding(payer.data_dir, secrets)]
        if BACKEND == "postgres":
            url = payer.env["PAYERBRIDGE_DATABASE_URL"]
            found += [f"{name} {where}" for where in _tables_holding(url, secrets)]
    assert not found, "\n".join(found)
