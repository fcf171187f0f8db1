"""``payerbridge import`` of a plan's per-type export, as an operator runs it: the files of
one call load together and their members are indexed once; an import that changes nothing
about a member leaves its index entry as it was (real processes, real data directories)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from payerbridge.bootstrap import build_platform
from payerbridge.config import load_settings
from payerbridge.store.tables import identity_blocking_keys, identity_member_records
from tests.builders import a_coverage, a_patient
from tests.servers import run_cli

_MEMBERS = 12


def _write(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    return path


def _index(data_dir: Path, env: dict[str, str]) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """Each member's (indexed at, record, listed keys), and the key table's rows."""
    settings = load_settings(data_dir=data_dir, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    platform = build_platform(settings)
    try:
        with platform.engine.connect() as connection:
            records = {
                row.member_id: (
                    row.indexed_at,
                    orjson.loads(  # sealed at rest (ADR 0039)
                        platform.sealed_data.open(
                            "identity_member_records.record", row.record, row.member_id
                        )
                    ),
                    orjson.loads(row.blocking_keys),
                )
                for row in connection.execute(select(identity_member_records))
            }
            keys = {
                (row.key, row.member_id)
                for row in connection.execute(select(identity_blocking_keys))
            }
    finally:
        platform.close()
    return records, keys


def _listed(records: dict[str, Any]) -> set[tuple[str, str]]:
    return {(key, member) for member, (_, _, keys) in records.items() for key in keys}


def test_a_per_type_export_in_one_call_and_an_unchanged_reimport(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    env = database_env()
    data_dir = tmp_path / "data"
    patients = _write(
        tmp_path / "Patient.ndjson",
        [a_patient(f"p{n}", given=f"Given{n}", member_id=None) for n in range(_MEMBERS)],
    )
    coverages = [
        a_coverage(f"c{n}", patient=f"p{n}", member_id=f"M{n}", subscriber_id=f"S{n}")
        for n in range(_MEMBERS)
    ]
    coverage_file = _write(tmp_path / "Coverage.ndjson", coverages)

    loaded = run_cli(
        ["import", "--data-dir", str(data_dir), str(patients), str(coverage_file)], env=env
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr.count("imported") == 2
    records, keys = _index(data_dir, env)
    assert {member: record["member_id"] for member, (_, record, _) in records.items()} == {
        f"p{n}": f"M{n}" for n in range(_MEMBERS)
    }
    assert keys == _listed(records)  # no key the records do not list
    stamps = {member: at for member, (at, _, _) in records.items()}
    assert len(set(stamps.values())) == 1  # indexed once, together

    # The same Coverage file again, and one member's card renewed: only that member's
    # entry is written again, and its old card's key is gone.
    renewed = _write(
        tmp_path / "Renewed.ndjson",
        [a_coverage("c3", patient="p3", member_id="N3", subscriber_id="S3")],
    )
    again = run_cli(
        ["import", "--data-dir", str(data_dir), str(coverage_file), str(renewed)], env=env
    )
    assert again.returncode == 0, again.stderr
    after, keys_after = _index(data_dir, env)
    changed = {member for member, (at, _, _) in after.items() if at != stamps[member]}
    assert changed == {"p3"}
    assert after["p3"][1]["member_id"] == "N3"
    assert keys_after == _listed(after)
    assert set(records["p3"][2]) - set(after["p3"][2])  # the old card's key, removed
    assert isinstance(after["p3"][0], datetime)
