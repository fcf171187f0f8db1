"""X12 test files made on the fly: a valid 837P of any number of claims, streamed."""

from __future__ import annotations

import io
from collections.abc import Iterator

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
    """The segments (with their terminators) of one interchange of ``claims`` claims,
    ``per_transaction`` to a transaction set, generated one by one."""
    yield (
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*PLAN           "
        "*240115*1200*^*00501*000000001*0*T*:~\n"
    )
    yield "GS*HC*SENDER*PLAN*20240115*1200*1*X*005010X222A1~\n"
    sets = 0
    claim = 0
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


class GeneratedStream(io.RawIOBase):
    """A readable, non-seekable byte stream over generated text."""

    def __init__(self, parts: Iterator[str]) -> None:
        self._parts = parts
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray) -> int:  # type: ignore[override]
        while len(self._buffer) < len(target):
            try:
                self._buffer += next(self._parts).encode()
            except StopIteration:
                break
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
