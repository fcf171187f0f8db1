"""A member's data through its whole life, with real payers (ADR 0038): an exchange moves
their history; the upkeep sweep drops the raw answer and cuts the request once their
time is up; a legal hold refuses their erasure; once released, the erasure leaves none of
what only they had in any table of either payer, nor in any file of their data dirs, and
each audit chain still verifies."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, select

from payerbridge.store.sealed_columns import SEALED_COLUMNS
from payerbridge.store.tables import metadata
from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_exchange import start_payers, submit, switcher_to, wait_terminal
from tests.servers import REQUESTER_SCOPES, ServerProcess

# The sweep runs every second and the lifecycle's graces are a second: the purge is seen.
LIFECYCLE = {
    "PAYERBRIDGE_UPKEEP_SWEEP_SECONDS": "1",
    "PAYERBRIDGE_RAW_PAYLOAD_GRACE_HOURS": "0.0003",
    "PAYERBRIDGE_REQUEST_RETENTION_HOURS": "0.0003",
}


def only_theirs(network: Path, switcher: dict[str, Any]) -> list[str]:
    """What the switcher's request says that no other member's data holds: what must be
    gone after their erasure (a shared family name or birth date is not theirs alone)."""
    request = switcher["request"]
    member = request["member"]
    candidates = [
        *member["given"],
        member["family"],
        member["birth_date"],
        *member["address"]["line"],
        member["phone"],
        request["old_coverage"]["member_id"],
        request["new_coverage"]["member_id"],
    ]
    payer = orjson.loads((network / "network.json").read_bytes())["payers"][0]
    lines = (network / payer["file"]).read_text().splitlines()
    theirs = f"Patient/{switcher['old_patient_id']}"
    # Another member's record may name them (a dependent's Coverage names its
    # subscriber): it is that member's, and stays (ADR 0038).
    others = "\n".join(line for line in lines if compartment(orjson.loads(line)) != theirs)
    return [value for value in candidates if value not in others]


def compartment(resource: dict[str, Any]) -> str | None:
    if resource["resourceType"] == "Patient":
        return f"Patient/{resource['id']}"
    for key in ("beneficiary", "subject", "patient"):
        if isinstance(resource.get(key), dict):
            return str(resource[key].get("reference"))
    return None


def every_value(payer: ServerProcess) -> dict[str, str]:
    """Every table of the payer's database as text, as the database's own tools show it,
    with the sealed values opened (ADR 0044): what the plan itself could still read."""
    url = (
        payer.env.get("PAYERBRIDGE_DATABASE_URL")
        or f"sqlite:///{payer.data_dir / 'payerbridge.db'}"
    )
    engine = create_engine(url)
    sealed = {column.name: column for column in SEALED_COLUMNS}
    tables = {}
    with payer.platform() as platform, engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = connection.execute(select(table)).all()
            tables[table.name] = "\n".join(
                " ".join(_opened(platform, sealed, table.name, row, name) for name in row._fields)
                for row in rows
            )
    engine.dispose()
    return tables


def _opened(platform: Any, sealed: dict[str, Any], table: str, row: Any, name: str) -> str:
    value = row._mapping[name]
    column = sealed.get(f"{table}.{name}")
    if column is None or not value:
        return str(value)
    return str(platform.sealed_data.open(column.name, value, column.row_key(row)).decode())


def found(markers: list[str], tables: dict[str, str]) -> dict[str, list[str]]:
    return {
        name: hits
        for name, content in tables.items()
        if (hits := [marker for marker in markers if marker in content])
    }


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the sweep did not apply the retention classes"
        time.sleep(0.2)


def minimised(payer: ServerProcess, exchange_id: str) -> bool:
    with payer.platform() as platform:
        request = platform.exchanges.get(exchange_id).request
    return bool(request.get("minimised")) and "member" not in request


def test_a_members_data_is_purged_on_time_held_and_then_erased_without_a_trace(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    network = tmp_path / "network"
    write_network(network, 1, 40, 7, date.today() - timedelta(days=1), switchers=1)
    old, new, _ = start_payers(server, network, old_env=LIFECYCLE, new_env=LIFECYCLE)
    switcher = switcher_to(network, 0)
    markers = only_theirs(network, switcher)
    new_card = switcher["request"]["new_coverage"]["member_id"]
    assert new_card in markers and len(markers) >= 3, markers
    with new.client() as client:
        exchange = wait_terminal(client, submit(client, switcher["request"]))
    assert exchange["state"] == "completed", exchange
    imported = exchange["imported_patient_id"]
    assert found(markers, every_value(new))  # the new payer holds the member now

    # The sweep: the raw answer goes, the request is cut to what the audit needs.
    wait_for(lambda: not every_value(new)["exchange_payloads"])
    wait_for(lambda: minimised(new, exchange["id"]))

    # A hold refuses the old payer's erasure of its member; released, it goes through.
    old_member = switcher["old_patient_id"]
    held = old.cli(
        "members", "hold", old_member, "--reason", "litigation 2026-114", "--by", "counsel"
    )
    assert held.returncode == 0, held.stderr
    refused = old.cli("members", "erase", old_member, "--reason", "member request", "--by", "ops")
    assert refused.returncode == 4 and "legal-hold-active" in refused.stderr, refused.stderr
    assert found(markers, every_value(old))  # nothing was erased
    released = old.cli("members", "release", held.stdout.strip(), "--by", "counsel")
    assert released.returncode == 0, released.stderr
    erased = old.cli("members", "erase", old_member, "--reason", "member request", "--by", "ops")
    assert erased.returncode == 0, erased.stderr
    assert orjson.loads(erased.stdout)["fhir_resources"] > 0
    # The new payer's privacy office erases through the API: an operator's, with a reason.
    path = f"/lifecycle/members/{imported}/$erase"
    with new.client_with(new.register_client("plan-app", scope=REQUESTER_SCOPES)) as app:
        assert app.post(path, json={"reason": "member request", "by": "ops"}).status_code == 403
    with new.client() as operator:
        for body in ({"by": "ops"}, {"reason": "x", "by": "ops", "member": "other"}):
            refused = operator.post(path, json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["resourceType"] == "OperationOutcome"
        held_api = operator.post(
            f"/lifecycle/members/{imported}/holds", json={"reason": "audit 7", "by": "counsel"}
        )
        assert held_api.status_code == 201, held_api.text
        blocked = operator.post(path, json={"reason": "member request", "by": "privacy"})
        assert blocked.status_code == 409, blocked.text
        assert blocked.json()["issue"][0]["details"]["coding"][0]["code"] == "legal-hold-active"
        hold_id = held_api.json()["id"]
        release = f"/lifecycle/holds/{hold_id}/$release"
        assert operator.post(release, json={"by": "counsel"}).status_code == 200
        assert operator.post(release, json={"by": "counsel"}).status_code == 409
        listed = operator.get(f"/lifecycle/members/{imported}/holds").json()["holds"]
        assert [h["released_by"] for h in listed] == ["api:tester (counsel)"]
        erased_api = operator.post(path, json={"reason": "member request", "by": "privacy"})
        assert erased_api.status_code == 200, erased_api.text
        assert erased_api.json()["removed"]["exchanges"] == 1
        again = operator.post(path, json={"reason": "member request", "by": "privacy"})
        assert again.status_code == 404, again.text

    # The audit chains included: they name members by our ids, never by their cards.
    for payer in (old, new):
        assert found(markers, every_value(payer)) == {}
    for payer in (old, new):
        verified = payer.cli("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    for payer in (old, new):
        payer.stop()
        if payer.env.get("PAYERBRIDGE_DATABASE_URL"):
            continue
        # The files are read as bytes: what is stored as text is seen there.
        assert (
            payer is old
            or exchange["id"].encode() in (payer.data_dir / "payerbridge.db").read_bytes()
        )
        for path in payer.data_dir.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                left = [m for m in markers if m.encode() in content]
                assert left == [], (path.name, left)
