"""Incremental exchanges end to end: a first exchange moves the member's whole record; a
resource the old payer records afterwards arrives in a second exchange asked ``since``
the first one's data was received, and nothing older is sent again; a third finds
nothing new and says so (issue 54, ADR 0040)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_exchange import (
    start_payers,
    stored_everything,
    submit,
    switcher_to,
    wait_terminal,
)
from tests.servers import ServerProcess, new_key


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 30, 11, date.today() - timedelta(days=1), switchers=2)
    return out


def _a_new_condition(network: Path, patient_id: str) -> dict[str, Any]:
    """One of the member's Conditions, recorded again as a new one today."""
    info = orjson.loads((network / "network.json").read_bytes())
    with (network / info["payers"][0]["file"]).open("rb") as lines:
        for line in lines:
            resource = orjson.loads(line)
            subject = (resource.get("subject") or {}).get("reference")
            if resource["resourceType"] == "Condition" and subject == f"Patient/{patient_id}":
                break
        else:
            raise AssertionError("the member has no Condition")
    today = date.today().isoformat()
    condition = {k: v for k, v in resource.items() if k != "encounter"}
    return {**condition, "id": "since-test-cond-1", "onsetDateTime": today, "recordedDate": today}


def _refs(entries: list[dict[str, Any]]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries}


def _received(exchange: dict[str, Any]) -> dict[str, int]:
    """What the old payer's answer held, by type, its Provenance left out."""
    (normalized,) = [step for step in exchange["history"] if step["to"] == "normalized"]
    counts: dict[str, int] = normalized["detail"]["resources"]
    return {kind: n for kind, n in counts.items() if kind != "Provenance"}


def test_an_incremental_exchange_brings_only_what_changed_and_says_when_nothing_did(
    module_server: Callable[..., ServerProcess], network: Path, tmp_path: Path
) -> None:
    old, new, _ = start_payers(module_server, network)
    switcher = switcher_to(network, 0)
    request = switcher["request"]
    with new.client() as client:
        first = wait_terminal(client, submit(client, request))
        assert first["state"] == "completed", first
        assert first["since"] is None and first["received_at"] is not None
        everything = _received(first)
        assert everything["Patient"] == 1 and len(everything) > 2
        patient_id = first["imported_patient_id"]
        held = stored_everything(new, patient_id)["entry"]

        # The old payer records a new Condition for the member.
        condition = _a_new_condition(network, switcher["old_patient_id"])
        changes = tmp_path / "changes.ndjson"
        changes.write_bytes(orjson.dumps(condition))
        imported = old.cli("import", str(changes))
        assert imported.returncode == 0, imported.stderr

        second = wait_terminal(client, submit(client, {**request, "since": first["received_at"]}))
        assert second["state"] == "completed" and second["error"] is None, second
        assert second["since"] == first["received_at"]
        # The old payer sent the new Condition and the Patient (PDex sends it always).
        assert _received(second) == {"Patient": 1, "Condition": 1}
        (end,) = [step for step in second["history"] if step["to"] == "completed"]
        assert end["detail"]["completeness"]["changed"] == {"Condition": 1}
        assert end["detail"]["completeness"]["removed_count"] == 0
        assert second["imported_patient_id"] == patient_id
        # Held once each: the new Condition added, nothing older twice, nothing removed.
        now_held = _refs(stored_everything(new, patient_id)["entry"])
        assert _refs(held) <= now_held
        added = sorted(ref.split("/")[0] for ref in now_held - _refs(held))
        assert added[0] == "Condition" and set(added[1:]) == {"Provenance"}, added

        third = wait_terminal(client, submit(client, {**request, "since": second["received_at"]}))
        assert third["state"] == "completed", third
        assert third["error"] == {
            "code": "nothing-new",
            "text": f"the old payer has nothing new since {second['received_at']}",
        }
        assert _received(third) == {"Patient": 1}
        (end,) = [step for step in third["history"] if step["to"] == "completed"]
        assert end["reason_code"] == "nothing-new"
        found = client.get("/exchanges", params={"reason": "nothing-new"}).json()
        assert [e["id"] for e in found["items"]] == [third["id"]]

        bad = client.post("/exchanges", json={**request, "since": "2026-01-01"}, headers=new_key())
        assert bad.status_code == 400, bad.text
        assert "since must be a FHIR instant" in bad.text

    # A standing pull of the member stops when the member is erased, its request cut.
    scheduled = _cli_json(new, "pulls", "schedule", "--exchange", first["id"])
    assert (scheduled["status"], scheduled["kind"]) == ("active", "quarterly")
    erased = new.cli("members", "erase", patient_id, "--reason", "member's request")
    assert erased.returncode == 0, erased.stderr
    (after,) = _cli_json(new, "pulls", "list")
    assert (after["status"], after["stop_reason"]) == ("stopped", "erased")


def _cli_json(payer: ServerProcess, *args: str) -> Any:
    done = payer.cli(*args)
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def test_a_run_off_schedule_from_the_cli_and_a_revoked_opt_in_refuses_a_schedule(
    server: Callable[..., ServerProcess], network: Path
) -> None:
    _, new, _ = start_payers(server, network)
    request = switcher_to(network, 1)["request"]
    with new.client() as client:
        first = wait_terminal(client, submit(client, request))
        assert first["state"] == "completed", first
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    schedule = _cli_json(
        new, "pulls", "schedule", "--exchange", first["id"], "--coverage-end", yesterday
    )
    # Coverage at the old payer ended: run-off, its first period from the exchange on
    # (the sweep starting pulls is tests/e2e/test_rule_clocks.py's).
    assert (schedule["kind"], schedule["status"]) == ("run-off", "active")
    assert schedule["last_received_at"] == first["received_at"]
    bad = new.cli("pulls", "schedule", "--exchange", first["id"], "--coverage-end", "soon")
    assert bad.returncode == 2 and "--coverage-end must be a date" in bad.stderr

    cancelled = _cli_json(new, "pulls", "cancel", schedule["id"])
    assert (cancelled["status"], cancelled["stop_reason"]) == ("stopped", "cancelled")
    revoked = new.cli("consents", "revoke", first["consent_id"])
    assert revoked.returncode == 0, revoked.stderr
    refused = new.cli("pulls", "schedule", "--exchange", first["id"])
    assert refused.returncode != 0
    assert "reason: revoked" in refused.stderr and "no current opt-in" in refused.stderr
    assert _cli_json(new, "pulls", "list", "--active") == []
