"""What sealing costs per identity record, in process (ADR 0039): one seal (as indexing
writes a record) and one open (as matching reads each candidate), beside what matching
already spent on each candidate before sealing (parsing its record from JSON).

Records are standardised from synthetic Patients with a name, birth date, address, phone
and Coverage, so their JSON is the size the index stores."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.model import record_from_dict, record_to_dict
from payerbridge.store.sealing import SealedField, Sealer

__all__ = ["SealingCost", "measure_sealing"]

_FIELD = SealedField("identity_member_records", "record")
_GIVEN = ("Ana", "Noah", "Maria", "James", "Aiyana", "Wei", "Fatima", "Oliver", "Sofia", "Liam")
_FAMILY = ("Garcia", "Smith", "Nguyen", "Johnson", "Okafor", "Kowalski", "Haddad", "Lee")
_STREET = ("Quince Lane", "Main Street", "Oak Avenue", "Pine Road", "Elm Court")


@dataclass(frozen=True)
class SealingCost:
    records: int
    mean_bytes: float
    sealed_bytes: float
    seal_us: float  # per record, best of the rounds
    open_us: float
    parse_us: float  # record_from_dict(orjson.loads(...)): what a candidate cost before


def _records(count: int, seed: int) -> list[tuple[str, bytes]]:
    draw = random.Random(seed)
    found = []
    for n in range(count):
        patient = {
            "resourceType": "Patient",
            "id": f"m{n}",
            "name": [{"family": draw.choice(_FAMILY), "given": [draw.choice(_GIVEN)]}],
            "birthDate": f"{draw.randint(1930, 2020)}-{draw.randint(1, 12):02d}-"
            f"{draw.randint(1, 28):02d}",
            "gender": draw.choice(("female", "male")),
            "telecom": [{"system": "phone", "value": f"555-{draw.randint(1000000, 9999999)}"}],
            "address": [
                {
                    "line": [f"{draw.randint(1, 9999)} {draw.choice(_STREET)}"],
                    "city": "Springfield",
                    "state": "IL",
                    "postalCode": f"{draw.randint(60000, 62999)}",
                }
            ],
        }
        coverage = {
            "resourceType": "Coverage",
            "id": f"c{n}",
            "status": "active",
            "subscriberId": f"S{n:08d}",
            "beneficiary": {"reference": f"Patient/m{n}"},
            "payor": [{"display": "Old Plan"}],
        }
        record = record_from_fhir(patient, coverage)
        found.append((f"m{n}", orjson.dumps(record_to_dict(record))))
    return found


def _best_us(rounds: int, items: Sequence[object], run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def measure_sealing(*, records: int = 5000, rounds: int = 5, seed: int = 42) -> SealingCost:
    """Seal and open ``records`` standardised records, best of ``rounds``."""
    sealer = Sealer({"k": os.urandom(32)}, "k", nonces=os.urandom, fetch=lambda _: None)
    plain = _records(records, seed)
    sealed = [(key, sealer.seal(body, field=_FIELD, row_key=key)) for key, body in plain]
    texts = [(key, body.decode()) for key, body in plain]
    seal_us = _best_us(
        rounds, plain, lambda: [sealer.seal(b, field=_FIELD, row_key=k) for k, b in plain]
    )
    open_us = _best_us(
        rounds, sealed, lambda: [sealer.open(s, field=_FIELD, row_key=k) for k, s in sealed]
    )
    parse_us = _best_us(
        rounds, texts, lambda: [record_from_dict(orjson.loads(t)) for _, t in texts]
    )
    return SealingCost(
        records=records,
        mean_bytes=sum(len(b) for _, b in plain) / records,
        sealed_bytes=sum(len(s) for _, s in sealed) / records,
        seal_us=seal_us,
        open_us=open_us,
        parse_us=parse_us,
    )
