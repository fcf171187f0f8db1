"""``payerbridge bench adapters`` (X12 part): 837 claims read and mapped to
ExplanationOfBenefit per second and peak memory, beside pyx12's own validation of the
same file (``x12n_document``, parse and validate, no output) as the baseline.

Each measure runs in a fresh process (multiprocessing, spawn) so that its peak RSS is
its own; run it on files of growing size to see that memory stays flat.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["X12Run", "claims_837", "run_x12_benchmark", "write_837"]

_HEADER = [
    "ST*837*{st:04d}*005010X222A1",
    "BHT*0019*00*B{st:04d}*20240115*1200*CH",
    "NM1*41*2*SANDBOX BILLING*****46*SBX01",
    "PER*IC*DESK*TE*5555550100",
    "NM1*40*2*SANDBOX PLAN*****46*SBXPLAN",
    "HL*1**20*1",
    "NM1*85*2*SANDBOX CLINIC*****XX*1497758544",
    "N3*1 MAIN ST",
    "N4*PORTLAND*ME*041010000",
    "REF*EI*010203040",
]
_CLAIM = [
    "HL*{hl}*1*22*0",
    "SBR*P*18*GRP100******CI",
    "NM1*IL*1*DOE*PAT****MI*M{claim:07d}",
    "N3*4 ELM ST",
    "N4*PORTLAND*ME*04101",
    "DMG*D8*19800214*F",
    "NM1*PR*2*SANDBOX PLAN*****PI*SBXPLAN",
    "CLM*C{claim:07d}*100***11:B:1*Y*A*Y*Y",
    "HI*ABK:J020*ABF:R509",
    "LX*1",
    "SV1*HC:99213*100*UN*1***1",
    "DTP*472*D8*20240110",
]


def claims_837(claims: int, per_transaction: int = 5000) -> Iterator[str]:
    """The segments of one valid 837P interchange of ``claims`` claims (synthetic),
    ``per_transaction`` to a transaction set (the TR3 advises at most 5,000), one by one."""
    yield (
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*PLAN           "
        "*240115*1200*^*00501*000000001*0*T*:~\n"
    )
    yield "GS*HC*SENDER*PLAN*20240115*1200*1*X*005010X222A1~\n"
    sets = claim = 0
    while claim < claims:
        sets += 1
        count = 0
        for segment in _HEADER:
            count += 1
            yield segment.format(st=sets) + "~\n"
        for hl in range(2, 2 + min(per_transaction, claims - claim)):
            claim += 1
            for segment in _CLAIM:
                count += 1
                yield segment.format(hl=hl, claim=claim) + "~\n"
        yield f"SE*{count + 1}*{sets:04d}~\n"
    yield f"GE*{sets}*1~\n"
    yield "IEA*1*000000001~\n"


def write_837(path: Path, claims: int) -> Path:
    """Write a generated 837P of ``claims`` claims to ``path``, streamed."""
    with path.open("w", encoding="ascii") as out:
        out.writelines(claims_837(claims))
    return path


@dataclass(frozen=True)
class X12Run:
    claims: int
    file_mb: float
    pyx12_seconds: float
    pyx12_peak_rss_mb: float
    mapped_seconds: float
    mapped_peak_rss_mb: float
    resources: int

    @property
    def pyx12_claims_per_second(self) -> float:
        return self.claims / self.pyx12_seconds if self.pyx12_seconds else 0.0

    @property
    def mapped_claims_per_second(self) -> float:
        return self.claims / self.mapped_seconds if self.mapped_seconds else 0.0


def run_x12_benchmark(path: Path, claims: int) -> X12Run:
    """Time (a) pyx12's validation alone and (b) read_x12 with x12-837-eob on ``path``,
    each in a fresh process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pyx12_seconds, pyx12_rss, _ = pool.apply(_pyx12_alone, (str(path),))
    with context.Pool(1) as pool:
        mapped_seconds, mapped_rss, resources = pool.apply(_read_and_map, (str(path),))
    return X12Run(
        claims=claims,
        file_mb=path.stat().st_size / 1e6,
        pyx12_seconds=pyx12_seconds,
        pyx12_peak_rss_mb=pyx12_rss,
        mapped_seconds=mapped_seconds,
        mapped_peak_rss_mb=mapped_rss,
        resources=resources,
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pyx12_alone(path: str) -> tuple[float, float, int]:
    import pyx12.params  # type: ignore[import-untyped]  # noqa: PLC0415
    import pyx12.x12n_document  # type: ignore[import-untyped]  # noqa: PLC0415

    started = time.perf_counter()
    with open(path, encoding="ascii") as source:
        pyx12.x12n_document.x12n_document(pyx12.params.ParamsBase(), source, None, None)
    return time.perf_counter() - started, _peak_rss_mb(), 0


def _read_and_map(path: str) -> tuple[float, float, int]:
    from payerbridge.backends.mapping import (  # noqa: PLC0415
        BUILT_IN_MAPPINGS,
        RecordNotMapped,
        load_mapping,
    )
    from payerbridge.backends.model import SourceRecord  # noqa: PLC0415
    from payerbridge.backends.readers import read_file  # noqa: PLC0415

    mapping = load_mapping(BUILT_IN_MAPPINGS / "x12-837-eob" / "1.0.0")
    started = time.perf_counter()
    resources = 0
    for item in read_file(mapping.input, Path(path), mapping.input_options):
        if isinstance(item, SourceRecord):
            with contextlib.suppress(RecordNotMapped):
                resources += len(mapping.apply(item.data, source_id="bench", namespace="bench"))
    return time.perf_counter() - started, _peak_rss_mb(), resources
