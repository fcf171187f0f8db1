"""Completeness end to end (issue 52): the same member exchanged twice is held once; an
answer that says it is incomplete ends ``partial`` naming the source and types, and
asking again once the old payer gives everything ends ``completed``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from payerbridge.fhir.completeness import SOURCE_UNAVAILABLE, Gap, outcome_entry
from payerbridge.security.model import OPERATOR_SCOPE
from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_exchange import (
    start_payers,
    stored_everything,
    submit,
    switcher_to,
    wait_terminal,
)
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 30, 13, date.today() - timedelta(days=1), switchers=3)
    return out


def _patients(new: ServerProcess, patient_id: str) -> list[dict[str, Any]]:
    resources = [e["resource"] for e in stored_everything(new, patient_id)["entry"]]
    return [r for r in resources if r["resourceType"] == "Patient"]


def _received(new: ServerProcess) -> int:
    with new.platform() as platform:
        return int(platform.members.count("exchange:"))


def test_the_same_member_exchanged_twice_is_held_once_and_a_partial_answer_is_asked_again(
    server: Callable[..., ServerProcess],
    network: Path,
    proxies: Callable[..., tuple[str, Path]],
    tmp_path: Path,
) -> None:
    old, new, info = start_payers(server, network)
    operator = new.register_client("ops", scope=OPERATOR_SCOPE)
    with new.client() as client:
        # Twice the same member from the same old payer: one Patient, the rows updated.
        request = switcher_to(network, 0)["request"]
        first = wait_terminal(client, submit(client, request))
        held = _received(new)
        second = wait_terminal(client, submit(client, request))
    assert (first["state"], second["state"]) == ("completed", "completed"), second
    assert second["imported_patient_id"] == first["imported_patient_id"]
    assert len(_patients(new, second["imported_patient_id"])) == 1
    assert _received(new) == held  # nothing piled up, our receipt Provenance included
    completeness = second["completeness"]
    assert completeness["complete"]
    # The old payer's Provenance of each disclosure is new each time: the one it no
    # longer sends is removed (the answer was complete); everything else was updated.
    assert all(ref.startswith("Provenance/") for ref in completeness["removed"])
    removed = completeness["removed_count"]
    assert completeness["updated"] == second["resource_count"] - removed

    # An old payer whose claims system is down says so in its answer.
    outcome = tmp_path / "outcome.json"
    gap = Gap("claims", ("ExplanationOfBenefit", "Coverage"), SOURCE_UNAVAILABLE, "down", True)
    outcome.write_text(json.dumps(outcome_entry([gap])))
    proxied, _ = proxies(old.base_url, outcome=str(outcome))
    old_info = info["payers"][0]
    with new.client() as client:
        response = client.post(
            "/partners",
            json={
                "id": "gappy",
                "name": old_info["name"],
                "npi": old_info["npi"],
                "base_url": proxied,
                "client_id": "platform",
                "token_url": f"{old.base_url}/auth/token",
            },
        )
        assert response.status_code == 201, response.text
        location = submit(client, switcher_to(network, 1, "gappy")["request"])
        partial = wait_terminal(client, location)
        assert partial["state"] == "partial", partial
        assert partial["error"]["code"] == "incomplete"
        assert "'claims'" in partial["error"]["text"]
        (seen,) = partial["completeness"]["gaps"]
        assert seen["source"] == "claims" and seen["retry_may_help"]
        assert seen["types"] == ["ExplanationOfBenefit", "Coverage"]
        listed = client.get("/exchanges", params={"state": "partial"}).json()
        assert [item["id"] for item in listed["items"]] == [partial["id"]]
        assert [s["to"] for s in partial["history"]][-2:] == ["normalized", "partial"]

        # The source is back: an operator asks again, and the exchange completes.
        outcome.unlink()
        replay = f"/exchanges/{partial['id']}/$replay"
        headers = {"Authorization": f"Bearer {operator}", "Idempotency-Key": "ask-again-1"}
        assert client.post(replay, headers=headers).status_code == 200
        assert client.post(replay, headers=headers).status_code == 200  # the same key: once
        done = wait_terminal(client, location)
    assert done["state"] == "completed", done
    assert done["replays"] == 1 and done["completeness"]["complete"]
    assert done["imported_patient_id"] == partial["imported_patient_id"]
    assert done["error"] is None
    assert len(_patients(new, done["imported_patient_id"])) == 1
    # The partial end, with its gaps, is in the exchange's audit trail.
    with new.platform() as platform:
        trail = platform.units.exchange().audit.for_entity("Exchange", partial["id"])
    ends = [e for e in trail if e["action"] == "exchange.transition" and e["outcome"] == "partial"]
    assert len(ends) == 1
    assert ends[0]["detail"]["completeness"]["gaps"][0]["source"] == "claims"
