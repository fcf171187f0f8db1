"""Real Bulk Data clients, unmodified, against a running payerbridge (issue 50).

``smart-fetch`` (the SMART Backend Services exporter that replaced ``cumulus-etl
export``) runs as its own process from its own venv (``make test`` installs it from
``tests/clients/requirements.txt``), as a plan would run it: it reads our SMART
configuration and CapabilityStatement, asks a token for the per-type SMART v1 scopes it
wants, kicks off ``Group/[id]/$export`` of the MatchedMembers Group its
``$bulk-member-match`` left, and the system-level ``[base]/$export``, polls, downloads,
and deletes the job. What it writes must be exactly the consenting members' records of
the types it asked for, each once, and nothing its consent withholds."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import WITHHELD_UNDER_REGULAR, a_member_reaching_sensitive_shared_data
from tests.e2e.test_bulk_export import NEW_NPI, OLD_NPI, luis, matched_group, noor
from tests.servers import REQUESTER_SCOPES, ServerProcess, new_signing_key, public_jwk

SMART_FETCH_ENV = "PAYERBRIDGE_TEST_SMART_FETCH"
REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "newplan"


@pytest.fixture
def smart_fetch() -> Path:
    """The smart-fetch that ``make test`` installed (its own venv, never the project's),
    looked for before any server starts."""
    configured = os.environ.get(SMART_FETCH_ENV)
    binary = Path(configured) if configured else REPO / ".venv" / "clients" / "bin" / "smart-fetch"
    if not binary.is_file():
        pytest.fail(
            f"smart-fetch is not installed at {binary}: `make test` installs it (from "
            f"tests/clients/requirements.txt into .venv/clients; {SMART_FETCH_ENV} names "
            "another binary)"
        )
    return binary


def releasable() -> dict[str, dict[str, Any]]:
    """What the old payer may send the new plan, by ``Type/id``: Ana's (p1, a regular
    consent) records but the sensitive ones, and all of Luis's (a sensitive consent).
    Noor's consent cannot be honoured and Zora is no member: nothing of theirs."""
    held = {**a_member_reaching_sensitive_shared_data("p1")}
    held.update({f"{r['resourceType']}/{r['id']}": r for r in luis()})
    return {ref: r for ref, r in held.items() if ref not in WITHHELD_UNDER_REGULAR}


@pytest.fixture
def payer(server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    resources = [*a_member_reaching_sensitive_shared_data("p1").values(), *luis(), *noor()]
    data = tmp_path / "members.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    return server("old", env={"PAYERBRIDGE_ORG_NPI": OLD_NPI}, import_files=[data])


def write_keys(tmp_path: Path) -> tuple[dict[str, Any], Path, Path]:
    """A new key pair: the public JWK Set to register, and the private key as the two
    files smart-fetch reads (named ``.jwks`` or ``.pem``): a JWKS (a key with
    ``key_ops: ["sign"]``, ``kid`` and ``alg``) and a PEM (the ``kid`` it sends then is
    the key's RFC 7638 thumbprint, which ``new_signing_key`` names it by)."""
    key = new_signing_key("P-384")
    private = {**key.as_dict(private=True), "kid": key.kid, "alg": "ES384", "key_ops": ["sign"]}
    jwks = tmp_path / "smart-key.jwks"
    jwks.write_bytes(orjson.dumps({"keys": [private]}))
    pem = tmp_path / "smart-key.pem"
    pem.write_bytes(key.as_pem(private=True))
    return {"keys": [public_jwk(key)]}, jwks, pem


def run_smart_fetch(
    binary: Path, payer: ServerProcess, out: Path, key: Path, *more: str
) -> subprocess.CompletedProcess[str]:
    args = [
        str(binary),
        "bulk",
        str(out),
        "--fhir-url",
        payer.fhir_base,
        "--smart-client-id",
        CLIENT_ID,
        "--smart-key",
        str(key),
        "--no-compression",
        # Its default _typeFilter on Observation (US Core categories) is one we refuse.
        "--no-default-filters",
        *more,
    ]
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=180, check=False)


def written(out: Path) -> dict[str, list[str]]:
    """The resources smart-fetch wrote, as ``Type/id`` per type (its error files apart)."""
    found: dict[str, list[str]] = {}
    for path in sorted(out.glob("*.ndjson")):
        if path.name == "log.ndjson":
            continue
        for line in path.read_bytes().splitlines():
            if line.strip():
                resource = orjson.loads(line)
                assert path.name.startswith(f"{resource['resourceType']}."), path.name
                ref = f"{resource['resourceType']}/{resource['id']}"
                found.setdefault(resource["resourceType"], []).append(ref)
    return found


def check_export(
    payer: ServerProcess, result: subprocess.CompletedProcess[str], out: Path, path: str
) -> None:
    """smart-fetch finished cleanly and wrote exactly what the members' consents release
    of the types it asked for, each resource once, as many as its log counted."""
    report = f"{result.stdout}\n{result.stderr}\n--- server log ---\n{payer.log()[-20000:]}"
    assert result.returncode == 0, report
    assert "Failed to clean up" not in result.stdout + result.stderr, report  # its DELETE
    events = [orjson.loads(line) for line in (out / "log.ndjson").read_bytes().splitlines()]
    [kickoff] = [e["eventDetail"] for e in events if e["eventId"] == "kickoff"]
    assert kickoff["errorCode"] is None, kickoff
    assert kickoff["exportUrl"].startswith(f"{payer.fhir_base}{path}?"), kickoff["exportUrl"]
    asked = set(kickoff["requestParameters"]["_type"].split(","))
    # It asked for the clinical types it knows that our CapabilityStatement lists...
    assert {"Patient", "Encounter", "Condition", "MedicationRequest"} <= asked, asked
    expected = {ref for ref in releasable() if ref.split("/")[0] in asked}
    assert {ref.split("/")[0] for ref in expected} == {
        "Patient",
        "Encounter",
        "Condition",
        "MedicationRequest",
    }

    # ... and got exactly those, once each.
    found = written(out)
    lines = [ref for refs in found.values() for ref in refs]
    assert [ref for ref, n in Counter(lines).items() if n > 1] == []
    assert set(lines) == expected, report
    assert not set(lines) & WITHHELD_UNDER_REGULAR
    # Nobody left out and nothing asked refused: the manifest listed no error file.
    assert not (out / "error").exists(), list((out / "error").iterdir())
    # Its log counts what it wrote, file by file and in all.
    downloaded = [e["eventDetail"] for e in events if e["eventId"] == "download_complete"]
    output = [d for d in downloaded if "/OperationOutcome." not in d["fileUrl"]]
    assert sum(d["resourceCount"] for d in output) == len(lines), downloaded
    [complete] = [e["eventDetail"] for e in events if e["eventId"] == "export_complete"]
    assert complete["resources"] == sum(d["resourceCount"] for d in downloaded)
    assert complete["files"] == len(downloaded)


def test_smart_fetch_exports_the_matched_members_and_the_system_unmodified(
    smart_fetch: Path, payer: ServerProcess, tmp_path: Path
) -> None:
    public, jwks, pem = write_keys(tmp_path)
    # The new plan's client, registered with its public key; smart-fetch gets its own
    # token with the private one, asking per-type scopes that system/*.rs covers.
    token = payer.register_client(CLIENT_ID, npi=NEW_NPI, scope=REQUESTER_SCOPES, jwks=public)
    with payer.client_with(token) as client:
        group = matched_group(client)  # Ana and Luis matched, their consents kept

    group_out = tmp_path / "group"
    result = run_smart_fetch(smart_fetch, payer, group_out, jwks, "--group", group["id"])
    check_export(payer, result, group_out, f"/Group/{group['id']}/$export")

    # Without --group it calls the system-level [base]/$export: on a payer-to-payer
    # server, the members whose consent names this client, the same two.
    system_out = tmp_path / "system"
    result = run_smart_fetch(smart_fetch, payer, system_out, pem)
    check_export(payer, result, system_out, "/$export")
