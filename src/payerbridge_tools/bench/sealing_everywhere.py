"""What sealing the member data costs per resource, in process (ADR 0044).

A synthetic old payer's population (the sandbox generator's members, each with Coverage,
claims, conditions, observations and Provenance) is imported into a real platform on
SQLite in a temporary data dir, its bodies sealed as stored. Measured, best of the rounds:

- ``seal`` and ``open`` of each body, with the data keys' own sealer (what a write and a
  read of ``fhir_resources.body``, or of a bulk output line, add);
- ``read`` and ``read_plain``: the members' compartments read back as a bulk export and
  ``$everything`` read them (``stream_compartments``: the query, the open, the JSON
  parse, the meta), from the sealed database and from a copy of it whose bodies are
  plaintext read through keys that open nothing; the two are timed in turns, round by
  round, so a busy machine slows both alike;
- ``loop_ms``: the fixed pure-Python loop the other reports time, to set these numbers
  beside the end-to-end figures recorded on a quieter machine.

An export adds one open (its compartment read), one seal (its line) and one open (the
download) per resource; ``$everything`` adds one open.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from payerbridge.store.at_rest import AtRest
from payerbridge.store.sealing import SealedField

__all__ = ["MemberDataSealingCost", "measure_member_data_sealing"]


@dataclass(frozen=True)
class MemberDataSealingCost:
    resources: int
    members: int
    mean_bytes: float
    sealed_bytes: float
    seal_us: float  # per resource
    open_us: float
    read_us: float  # per resource of stream_compartments, sealed as shipped
    read_plain_us: float  # the same, from a copy whose bodies are plaintext (before 0044)
    loop_ms: float  # 1M additions in pure Python (the other reports' CPU speed line)

    @property
    def export_added_us(self) -> float:
        return self.seal_us + 2 * self.open_us

    @property
    def read_share(self) -> float:
        """What sealing adds to the read path, against the read without it."""
        return self.read_us / self.read_plain_us - 1


def _best(rounds: int, count: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / max(count, 1) * 1e6


def _loop_ms() -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for n in range(1_000_000):
            total += n
        best = min(best, time.perf_counter() - start)
    return best * 1000


def measure_member_data_sealing(
    *, members: int = 300, rounds: int = 5, seed: int = 7
) -> MemberDataSealingCost:
    from sqlalchemy import select

    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.store.at_rest import at_rest
    from payerbridge.store.sealed_fields import RESOURCE_BODY
    from payerbridge.store.tables import fhir_resources
    from payerbridge.types import MemberId
    from payerbridge_tools.sandbox.generator import write_network

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_network(root / "network", 1, members, seed, date(2026, 1, 1), switchers=1)
        info = orjson.loads((root / "network" / "network.json").read_bytes())
        platform = build_platform(load_settings(data_dir=root / "payer"))
        try:
            path = root / "network" / info["payers"][0]["file"]
            platform.import_member_files([path], progress=lambda _path, _size: None)
            with platform.engine.connect() as connection:
                rows = connection.execute(
                    select(fhir_resources.c.ref, fhir_resources.c.body, fhir_resources.c.patient_id)
                ).all()
            keys = at_rest(platform.engine)
            sealed = [(row.ref, row.body) for row in rows]
            plain = [(ref, keys.open(body, RESOURCE_BODY, ref)) for ref, body in sealed]
            patients = sorted({MemberId(row.patient_id) for row in rows if row.patient_id})
            read_count = sum(1 for row in rows if row.patient_id)
            plain_store, plain_engine = _plaintext_copy(platform, root / "plain.db", plain)
            sealed_reads, plain_reads = [], []
            for _ in range(rounds):
                sealed_reads.append(
                    _best(1, read_count, lambda: _read_all(platform.members, patients))
                )
                plain_reads.append(_best(1, read_count, lambda: _read_all(plain_store, patients)))
            plain_engine.dispose()
            return MemberDataSealingCost(
                resources=len(rows),
                members=len(patients),
                mean_bytes=sum(len(body) for _, body in plain) / len(plain),
                sealed_bytes=sum(len(body) for _, body in sealed) / len(sealed),
                seal_us=_best(rounds, len(plain), lambda: _seal_all(keys, plain)),
                open_us=_best(rounds, len(sealed), lambda: _open_all(keys, sealed)),
                read_us=min(sealed_reads),
                read_plain_us=min(plain_reads),
                loop_ms=_loop_ms(),
            )
        finally:
            platform.close()


def _seal_all(keys: Any, plain: Sequence[tuple[str, bytes]]) -> None:
    from payerbridge.store.sealed_fields import RESOURCE_BODY

    for ref, body in plain:
        keys.seal_bytes(body, RESOURCE_BODY, ref)


def _open_all(keys: Any, sealed: Sequence[tuple[str, bytes]]) -> None:
    from payerbridge.store.sealed_fields import RESOURCE_BODY

    for ref, body in sealed:
        keys.open(body, RESOURCE_BODY, ref)


def _read_all(members: Any, patients: Sequence[Any]) -> None:
    for _ in members.stream_compartments(patients):
        pass


class _Unsealed(AtRest):
    """Keys that open a body as it is stored: the database as it was before ADR 0044."""

    def __init__(self) -> None:
        pass

    def open(self, stored: str | bytes | memoryview, field: SealedField, row_key: str) -> bytes:
        return stored.encode() if isinstance(stored, str) else bytes(stored)


def _plaintext_copy(platform: Any, path: Path, plain: Sequence[tuple[str, bytes]]) -> Any:
    """A copy of the platform's SQLite database whose bodies are plaintext, and a member
    store reading it through keys that open nothing (and its engine, to dispose of)."""
    import sqlite3

    from payerbridge.store.at_rest import attach
    from payerbridge.store.engines import create_db_engine
    from payerbridge.store.members import SqlMemberStore

    source = sqlite3.connect(platform.settings.data_dir / "payerbridge.db")
    copy = sqlite3.connect(path)
    with source, copy:
        source.backup(copy)
        copy.executemany(
            "UPDATE fhir_resources SET body = ? WHERE ref = ?",
            [(body, ref) for ref, body in plain],
        )
    source.close()
    copy.close()
    engine = create_db_engine(f"sqlite:///{path}")
    attach(engine, _Unsealed())
    return SqlMemberStore(engine), engine
