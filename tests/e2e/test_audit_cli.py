"""``payerbridge audit verify | checkpoint`` against a store an attacker has changed: real
processes, a real data directory, SQLite or PostgreSQL (PAYERBRIDGE_TEST_BACKEND).

The attacker has the database (drops the triggers, edits rows, knows the hash scheme)
but not the signing key in the data directory.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from payerbridge.audit.chain import canonical_bytes, hash_leaf, link
from payerbridge.audit.model import AuditEvent
from tests.conftest import BACKEND, opened_platform
from tests.servers import ServerProcess, run_cli

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _events(first: int, count: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            at=T0 + timedelta(seconds=n),
            actor="operator",
            action="exchange.transition",
            entity_type="Exchange",
            entity_id=f"x-{n}",
            outcome="completed",
            detail={"to": "completed", "n": n},
        )
        for n in range(first, first + count)
    ]


def _cli(command: str, data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["audit", command, "--data-dir", str(data_dir)], env=env)


# Most commands run in this process (typer's runner): a process of their own adds nothing.


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    from typer.testing import CliRunner

    from payerbridge.cli.audit import audit_app

    return CliRunner().invoke(audit_app, args, env=env)


def _build(data_dir: Path, env: dict[str, str]) -> None:
    """15 events: checkpoints signed at 6 and 12 (published to every configured place),
    three after the last."""
    with opened_platform(data_dir, env) as platform:
        for first, count in ((1, 6), (7, 6), (13, 3)):
            platform.audit.record_many(_events(first, count))
            if first < 13:
                signed = _invoke(["checkpoint", "--data-dir", str(data_dir)], env)
                assert signed.exit_code == 0, signed.output
                assert f"up to event {first + count - 1}" in signed.stdout


@pytest.fixture
def audited(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> tuple[Path, dict[str, str]]:
    """15 events: checkpoints signed at 6 and 12, three after the last."""
    data_dir, env = tmp_path / "payer", database_env()
    _build(data_dir, env)
    return data_dir, env


@contextmanager
def _database(data_dir: Path, env: dict[str, str]) -> Iterator[Any]:
    """The attacker's own connection, outside payerbridge."""
    if BACKEND == "postgres":
        with psycopg.connect(env["PAYERBRIDGE_DATABASE_URL"], autocommit=True) as connection:
            yield connection
    else:
        connection = sqlite3.connect(data_dir / "payerbridge.db", isolation_level=None)
        try:
            yield connection
        finally:
            connection.close()


def _sql(text: str) -> str:
    return text.replace("?", "%s") if BACKEND == "postgres" else text


def _drop_triggers(connection: Any) -> None:
    if BACKEND == "postgres":
        connection.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        connection.execute("DROP TRIGGER audit_events_chain ON audit_events")
    else:
        for name in ("no_update", "no_delete", "in_sequence", "advance_head"):
            connection.execute(f"DROP TRIGGER audit_events_{name}")


def _change_a_field(connection: Any) -> None:
    connection.execute("UPDATE audit_events SET outcome = 'failed' WHERE seq = 9")


def _delete_an_event(connection: Any) -> None:
    connection.execute("DELETE FROM audit_events WHERE seq = 4")


def _truncate_below_the_checkpoint(connection: Any) -> None:
    # Hide the cut: the head row made to agree with what is left.
    connection.execute("DELETE FROM audit_events WHERE seq >= 10")
    row = connection.execute("SELECT chain_hash FROM audit_events WHERE seq = 9").fetchone()
    connection.execute(_sql("UPDATE audit_head SET seq = 9, hash = ? WHERE id = 1"), (row[0],))


def _rehash_after_an_edit(connection: Any) -> None:
    """Edit event 9, then make every hash after it anew and move the head: only the
    signing key is missing."""
    connection.execute("UPDATE audit_events SET outcome = 'failed' WHERE seq = 9")
    columns = "seq, at, actor, action, entity_type, entity_id, outcome, request_id, detail"
    rows = connection.execute(f"SELECT {columns} FROM audit_events ORDER BY seq").fetchall()
    previous = None
    for seq, at, actor, action, entity_type, entity_id, outcome, request_id, detail in rows:
        if isinstance(at, str):  # SQLite
            at = datetime.fromisoformat(at).replace(tzinfo=UTC)
        leaf = hash_leaf(
            canonical_bytes(
                AuditEvent(at, actor, action, entity_type, entity_id, outcome, request_id),
                detail,
            )
        )
        if previous is None:
            previous = connection.execute(
                _sql("SELECT prev_hash FROM audit_events WHERE seq = ?"), (seq,)
            ).fetchone()[0]
        current = link(previous, leaf)
        connection.execute(
            _sql(
                "UPDATE audit_events SET leaf_hash = ?, prev_hash = ?, chain_hash = ? WHERE seq = ?"
            ),
            (leaf, previous, current, seq),
        )
        previous = current
    connection.execute(_sql("UPDATE audit_head SET hash = ? WHERE id = 1"), (previous,))


def test_an_untouched_store_verifies(audited: tuple[Path, dict[str, str]]) -> None:
    data_dir, env = audited
    verified = _cli("verify", data_dir, env)
    assert verified.returncode == 0, verified.stderr
    assert "15 events" in verified.stdout and "2 signed checkpoints" in verified.stdout


@pytest.mark.parametrize(
    ("tamper", "first_bad", "says"),
    [
        (_change_a_field, 9, "do not match its leaf hash"),
        (_delete_an_event, 4, "event 4 is missing"),
        (_truncate_below_the_checkpoint, 10, "signed checkpoint 12 covers them"),
        (_rehash_after_an_edit, 7, "do not match signed checkpoint 12"),
    ],
)
def test_tampering_fails_verify_and_names_the_first_bad_event(
    audited: tuple[Path, dict[str, str]],
    tamper: Callable[[Any], None],
    first_bad: int,
    says: str,
) -> None:
    data_dir, env = audited
    with _database(data_dir, env) as connection:
        _drop_triggers(connection)
        tamper(connection)
    verified = _invoke(["verify", "--data-dir", str(data_dir)], env)
    assert verified.exit_code == 6, verified.output
    assert f"first bad event {first_bad}:" in verified.stderr
    assert says in verified.stderr


def test_the_database_refuses_to_change_or_delete_audit_events(
    audited: tuple[Path, dict[str, str]],
) -> None:
    data_dir, env = audited
    errors = (psycopg.Error, sqlite3.Error)
    with _database(data_dir, env) as connection:
        with pytest.raises(errors, match="append-only"):
            connection.execute("UPDATE audit_events SET outcome = 'failed' WHERE seq = 3")
        with pytest.raises(errors, match="append-only"):
            connection.execute("DELETE FROM audit_events WHERE seq = 15")
    assert _invoke(["verify", "--data-dir", str(data_dir)], env).exit_code == 0


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from payerbridge.audit.model import AuditEvent
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    worker, rounds = sys.argv[1], int(sys.argv[2])
    platform = build_platform(load_settings(data_dir=Path(sys.argv[3])), run_migrations=False)
    for n in range(rounds):
        events = [
            AuditEvent(at=datetime.now(UTC), actor=worker, action="test.write",
                       entity_type="Worker", entity_id=worker, outcome=str(n), detail={"k": k})
            for k in range(1 + n % 3)
        ]
        platform.audit.record_many(events)
    platform.close()
    """
)


def test_writers_in_several_processes_leave_one_unbroken_chain(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    data_dir, env = tmp_path / "payer", database_env()
    with opened_platform(data_dir, env):
        pass  # migrated
    rounds, workers = 60, 4
    started = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, f"w{n}", str(rounds), str(data_dir)],
            env={**__import__("os").environ, **env},
            stderr=subprocess.PIPE,
        )
        for n in range(workers)
    ]
    for process in started:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
    expected = workers * sum(1 + n % 3 for n in range(rounds))
    signed = _cli("checkpoint", data_dir, env)
    assert signed.returncode == 0, signed.stderr
    verified = _cli("verify", data_dir, env)
    assert verified.returncode == 0, verified.stderr
    assert f"{expected} events" in verified.stdout


def test_a_worker_signs_checkpoints_on_its_schedule(
    server: Callable[..., ServerProcess],
) -> None:
    payer = server("payer", env={"PAYERBRIDGE_AUDIT_CHECKPOINT_EVERY_EVENTS": "1"})
    with payer.platform() as platform:
        platform.audit.record_many(_events(1, 2))
    checkpoints = payer.data_dir / "audit-checkpoints.jsonl"
    deadline = time.monotonic() + 60  # the schedule ticks every 15 s
    while time.monotonic() < deadline:
        lines = checkpoints.read_bytes().splitlines() if checkpoints.exists() else []
        if lines:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no checkpoint was signed:\n{payer.log()}")
    assert orjson.loads(lines[-1])["seq"] >= 2
    verified = payer.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr


@pytest.fixture
def witnessed(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> tuple[Path, dict[str, str], Path]:
    """The store of ``audited``, its checkpoints also appended to a witness directory
    outside the data dir."""
    data_dir, witness = tmp_path / "payer", tmp_path / "witness"
    witness.mkdir()
    env = {**database_env(), "PAYERBRIDGE_AUDIT_WITNESS": str(witness)}
    _build(data_dir, env)
    return data_dir, env, witness / "audit-checkpoints.jsonl"


def _trim_the_checkpoint_file(data_dir: Path, keep_up_to: int) -> None:
    """The data dir's holder drops the newest checkpoints from the local file."""
    path = data_dir / "audit-checkpoints.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(line for line in lines if orjson.loads(line)["seq"] <= keep_up_to))


def _cut_the_tail(connection: Any, *, after: int) -> None:
    """Delete every event after ``after`` and the database's record of the checkpoints
    that covered them, and make the head row agree: what is left links up."""
    connection.execute(_sql("DELETE FROM audit_events WHERE seq > ?"), (after,))
    connection.execute(_sql("DELETE FROM audit_checkpoints WHERE seq > ?"), (after,))
    row = connection.execute(
        _sql("SELECT chain_hash FROM audit_events WHERE seq = ?"), (after,)
    ).fetchone()
    connection.execute(
        _sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), (after, row[0])
    )


# The tail: checkpoints witnessed outside the data dir, and checkpoints held elsewhere.


def test_a_witnessed_store_verifies(witnessed: tuple[Path, dict[str, str], Path]) -> None:
    data_dir, env, witness = witnessed
    assert [orjson.loads(line)["seq"] for line in witness.read_bytes().splitlines()] == [6, 12]
    verified = _invoke(["verify", "--data-dir", str(data_dir)], env)
    assert verified.exit_code == 0, verified.output
    assert "15 events" in verified.stdout and "2 signed checkpoints" in verified.stdout
    assert "2 witnessed checkpoints read" in verified.stdout
    assert "events 13..15 are not under a signed checkpoint yet" in verified.stdout


def test_cutting_the_tail_and_the_checkpoint_file_fails_against_the_witness(
    witnessed: tuple[Path, dict[str, str], Path],
) -> None:
    data_dir, env, _ = witnessed
    with _database(data_dir, env) as connection:
        _drop_triggers(connection)
        _cut_the_tail(connection, after=9)
    _trim_the_checkpoint_file(data_dir, keep_up_to=6)
    verified = _invoke(["verify", "--data-dir", str(data_dir)], env)
    assert verified.exit_code == 6, verified.output
    assert (
        "first bad event 10: events 10..12 are missing: the witnessed checkpoint at 12 "
        "covers them" in verified.stderr
    )
    assert "checkpoint 12 is missing from the checkpoint file: the witness holds it" in (
        verified.stderr
    )


def test_trimming_the_witnessed_checkpoints_fails_verify(
    witnessed: tuple[Path, dict[str, str], Path],
) -> None:
    data_dir, env, witness = witnessed
    _trim_the_checkpoint_file(data_dir, keep_up_to=6)
    verified = _invoke(["verify", "--data-dir", str(data_dir)], env)
    assert verified.exit_code == 6, verified.output
    assert "checkpoint 12 is missing from the checkpoint file: the witness holds it" in (
        verified.stderr
    )
    # An auditor's copy of the witness, on a machine where none is configured.
    copy = data_dir.parent / "copy-of-the-witness.jsonl"
    copy.write_bytes(witness.read_bytes())
    unconfigured = {**env, "PAYERBRIDGE_AUDIT_WITNESS": ""}
    verified = _invoke(
        ["verify", "--data-dir", str(data_dir), "--witness", str(copy)], unconfigured
    )
    assert verified.exit_code == 6, verified.output
    assert "checkpoint 12 is missing from the checkpoint file" in verified.stderr


def test_against_passes_on_an_intact_extended_chain(
    witnessed: tuple[Path, dict[str, str], Path],
) -> None:
    data_dir, env, witness = witnessed
    with opened_platform(data_dir, env) as platform:
        platform.audit.record_many(_events(16, 5))  # written since; not yet signed
    line = witness.read_bytes().splitlines()[0].decode()  # the checkpoint at 6
    for held, seq in ((line, 6), (str(witness), 12)):  # a file of them: the newest is proven
        verified = _invoke(["verify", "--data-dir", str(data_dir), "--against", held], env)
        assert verified.exit_code == 0, verified.output
        assert (
            f"the chain of 20 events extends the witnessed checkpoint at {seq} "
            "(RFC 9162 consistency proof holds)" in verified.stdout
        )


@pytest.fixture
def unwitnessed(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> tuple[Path, dict[str, str], str]:
    """The store of ``audited`` with no witness configured; the checkpoint at 12 is also
    held elsewhere (by a partner, in a write-once store)."""
    data_dir, env = tmp_path / "payer", database_env()
    _build(data_dir, env)
    lines = (data_dir / "audit-checkpoints.jsonl").read_bytes().splitlines()
    held = tmp_path / "held.json"
    held.write_bytes(lines[-1])
    return data_dir, env, str(held)


def test_against_names_the_events_cut_below_a_checkpoint_held_elsewhere(
    unwitnessed: tuple[Path, dict[str, str], str],
) -> None:
    data_dir, env, held = unwitnessed
    with _database(data_dir, env) as connection:
        _drop_triggers(connection)
        _cut_the_tail(connection, after=9)
    _trim_the_checkpoint_file(data_dir, keep_up_to=6)
    plain = _invoke(["verify", "--data-dir", str(data_dir)], env)
    assert plain.exit_code == 0, plain.output  # what the data dir and database still say
    assert "note: no witnessed checkpoint read" in plain.stdout
    verified = _invoke(["verify", "--data-dir", str(data_dir), "--against", held], env)
    assert verified.exit_code == 6, verified.output
    assert (
        "first bad event 10: events 10..12 are missing: the witnessed checkpoint at 12 "
        "covers them" in verified.stderr
    )


def test_against_finds_a_rewritten_chain_inconsistent(
    unwitnessed: tuple[Path, dict[str, str], str],
) -> None:
    data_dir, env, held = unwitnessed
    with _database(data_dir, env) as connection:
        _drop_triggers(connection)
        connection.execute(_sql("DELETE FROM audit_checkpoints WHERE seq > ?"), (6,))
        _rehash_after_an_edit(connection)  # event 9 changed, every hash after it anew
    _trim_the_checkpoint_file(data_dir, keep_up_to=6)
    plain = _invoke(["verify", "--data-dir", str(data_dir)], env)
    assert plain.exit_code == 0, plain.output
    verified = _invoke(["verify", "--data-dir", str(data_dir), "--against", held], env)
    assert verified.exit_code == 6, verified.output
    assert (
        "the witnessed checkpoint's root (at 12) is not consistent with the chain of 15 events"
        in verified.stderr
    )


def test_against_refuses_what_is_not_a_checkpoint(
    unwitnessed: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    data_dir, env, _ = unwitnessed
    verified = _invoke(["verify", "--data-dir", str(data_dir), "--against", '{"seq": 3}'], env)
    assert verified.exit_code == 2, verified.output
    assert "the checkpoint given, line 1: not a checkpoint" in verified.stderr
    missing = str(tmp_path / "nowhere.json")
    verified = _invoke(["verify", "--data-dir", str(data_dir), "--against", missing], env)
    assert verified.exit_code == 2 and "no such checkpoint file" in verified.stderr


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({}, "PAYERBRIDGE_AUDIT_SIGNING_KEY"),  # the default: in the data dir
        (
            {"PAYERBRIDGE_AUDIT_SIGNING_KEY": "{data_dir}/keys/audit.key"},
            "PAYERBRIDGE_AUDIT_SIGNING_KEY",
        ),
        (
            {
                "PAYERBRIDGE_AUDIT_SIGNING_KEY": "{elsewhere}/audit.key",
                "PAYERBRIDGE_AUDIT_WITNESS": "",
            },
            "PAYERBRIDGE_AUDIT_WITNESS",
        ),
    ],
)
def test_production_refuses_to_start_with_the_audit_key_or_witness_in_the_data_dir(
    tmp_path: Path, settings: dict[str, str], names: str
) -> None:
    data_dir, elsewhere = tmp_path / "payer", tmp_path / "secrets"
    env = {
        "PAYERBRIDGE_ENVIRONMENT": "prod",
        "PAYERBRIDGE_PUBLIC_BASE_URL": "https://payer.example",
        "PAYERBRIDGE_AUDIT_WITNESS": str(tmp_path / "witness.jsonl"),
        **{k: v.format(data_dir=data_dir, elsewhere=elsewhere) for k, v in settings.items()},
    }
    started = run_cli(["serve", "--data-dir", str(data_dir), "--port", "1"], env=env, timeout=60)
    assert started.returncode == 2, started.stdout + started.stderr
    assert "configuration error" in started.stderr and names in started.stderr
    assert not (data_dir / "audit-signing.key").exists()


def test_a_witness_inside_the_data_dir_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "payer"
    env = {"PAYERBRIDGE_AUDIT_WITNESS": str(data_dir / "witness.jsonl")}
    verified = _invoke(["checkpoint", "--data-dir", str(data_dir)], env)
    assert verified.exit_code == 2, verified.output
    assert "PAYERBRIDGE_AUDIT_WITNESS" in verified.stderr and "outside data_dir" in verified.stderr
