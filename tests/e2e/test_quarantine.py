"""The quarantine as operators see it (ADR 0030): resources that failed their profiles,
held through the platform (as the mapping path will), then listed over ``GET
/quarantine`` of a real server and by ``payerbridge quarantine list | show``; SQLite or
PostgreSQL (PAYERBRIDGE_TEST_BACKEND)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from payerbridge.backends.model import HeldIssue, SourceId, ToHold
from payerbridge.backends.quarantine import quarantine
from tests.servers import REQUESTER_SCOPES, ServerProcess

US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0"
SECRET = "Zanzibar-Quux"  # a value that must never reach a list, an audit event or a log


def _patient(n: int) -> dict[str, Any]:
    """A US Core Patient missing its identifier and gender: it fails its profile."""
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "meta": {"profile": [US_CORE_PATIENT]},
        "name": [{"family": SECRET, "given": ["Ana"]}],
    }


def _hold(server: ServerProcess, source: str, resources: list[dict[str, Any]]) -> list[str]:
    with server.platform() as platform:
        items = [
            ToHold(
                SourceId(source),
                resource,
                tuple(HeldIssue.of(issue) for issue in platform.profiles.check(resource)),
                mapping_id="csv-patients",
                mapping_version="3",
            )
            for resource in resources
        ]
        assert all(item.issues for item in items)
        with platform.transactions.begin() as unit:
            held = quarantine(unit, platform.quarantine, items, actor="test-mapping")
        return [entry.id for entry in held]


def test_operators_list_and_read_the_quarantine_over_http_and_the_cli(
    server: Callable[..., ServerProcess],
) -> None:
    old_payer = server("old")
    claims = _hold(old_payer, "claims-x12", [_patient(1), _patient(2), _patient(3)])
    (clinical,) = _hold(old_payer, "clinical-csv", [_patient(4)])

    operator = old_payer.authorize("ops")
    with operator.client() as http:
        page = http.get("/quarantine", params={"_count": 2}).json()
        assert (page["total"], page["count"]) == (4, 2)
        assert [item["id"] for item in page["items"]] == claims[:2]
        first = page["items"][0]
        assert first["source"] == "claims-x12"
        assert first["mapping"] == {"id": "csv-patients", "version": "3"}
        assert (first["resource_type"], first["resource_id"]) == ("Patient", "p1")
        assert first["profiles"] == [US_CORE_PATIENT]
        rules = {(issue["rule"], issue["path"]) for issue in first["issues"]}
        assert ("cardinality", "Patient.identifier") in rules
        assert "resource" not in first  # no bodies in lists
        following = http.get(page["next"]).json()
        assert [item["id"] for item in following["items"]] == [claims[2], clinical]
        assert following["next"] is None

        by_source = http.get("/quarantine", params={"source": "clinical-csv"}).json()
        assert [item["id"] for item in by_source["items"]] == [clinical]
        assert by_source["total"] == 1

        one = http.get(f"/quarantine/{clinical}").json()
        assert one["resource"]["name"][0]["family"] == SECRET
        assert http.get("/quarantine/nothing-here").status_code == 404
        # A cursor past any seq (found by the fuzz run: it overflowed in the database).
        assert http.get("/quarantine", params={"after": 2**70}).status_code == 400
        # Found by the fuzz run too: a number not in digits, a parameter given twice.
        assert http.get("/quarantine", params={"after": "0.0"}).status_code == 400
        twice = http.get("/quarantine", params=[("source", "a"), ("source", "b")])
        assert twice.status_code == 400 and "given once" in twice.text
    assert SECRET not in orjson.dumps(page).decode()

    requester = old_payer.register_client("plan", scope=REQUESTER_SCOPES)
    with old_payer.client_with(requester) as http:
        assert http.get("/quarantine").status_code == 403

    listed = old_payer.cli("quarantine", "list", "--source", "claims-x12", "--json")
    assert listed.returncode == 0, listed.stderr
    shown = orjson.loads(listed.stdout)
    assert [item["id"] for item in shown["items"]] == claims
    assert SECRET not in listed.stdout
    table = old_payer.cli("quarantine", "list")
    assert table.returncode == 0, table.stderr
    assert "4 shown of 4 held" in table.stdout
    detail = old_payer.cli("quarantine", "show", clinical)
    assert detail.returncode == 0, detail.stderr
    assert orjson.loads(detail.stdout)["resource"]["id"] == "p4"
    missing = old_payer.cli("quarantine", "show", "nothing-here")
    assert missing.returncode != 0 and "no quarantined resource" in missing.stderr

    with old_payer.platform() as platform:
        trail = platform.audit.for_entity("QuarantinedResource", clinical)
    assert [event["action"] for event in trail] == ["resource.quarantine"]
    assert SECRET not in orjson.dumps(trail).decode()
    assert SECRET not in old_payer.log()
