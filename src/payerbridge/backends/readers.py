"""The readers a mapping names in ``input``: a file in, its records (and the problems of
those that cannot be read) out, streamed, so that a file of any size reads in the same
memory."""

from __future__ import annotations

import importlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from payerbridge.backends.model import Location, RecordProblem, SourceRecord
from payerbridge.backends.ncpdp import read_ncpdp
from payerbridge.backends.tabular import read_csv, read_fixed_width
from payerbridge.errors import MappingError

__all__ = ["READERS", "read_file", "read_stream"]

Records = Iterator[SourceRecord | RecordProblem]
READERS = ("x12", "ncpdp", "csv", "fixed-width", "fhir")


def read_file(kind: str, path: Path, options: dict[str, Any]) -> Records:
    with path.open("rb") as stream:
        yield from read_stream(kind, stream, path.name, options)


def read_stream(kind: str, stream: BinaryIO, name: str, options: dict[str, Any]) -> Records:
    """The records of ``stream`` as the reader ``kind`` reads them."""
    if kind == "x12":
        # Imported when first needed: pyx12 loads its maps.
        x12 = importlib.import_module("payerbridge.backends.x12")
        yield from x12.read_x12(stream, name, options)
        return
    if kind == "ncpdp":  # bytes: its separators are control characters
        yield from read_ncpdp(stream, name, options)
        return
    if kind not in READERS:
        raise MappingError(f"no reader '{kind[:40]}': the readers are {', '.join(READERS)}")
    text = io.TextIOWrapper(stream, encoding=str(options.get("encoding", "utf-8")), newline="")
    try:
        if kind == "csv":
            yield from read_csv(text, name, options)
        elif kind == "fixed-width":
            yield from read_fixed_width(text, name, options)
        else:
            yield from _read_ndjson(text, name)
    except UnicodeDecodeError as exc:
        yield RecordProblem(
            Location(name),
            f"not {options.get('encoding', 'utf-8')} text ({exc.reason})",
            "structure",
        )
    finally:
        text.detach()


def _read_ndjson(lines: io.TextIOWrapper, name: str) -> Records:
    """FHIR resources, one per line (Bulk Data's NDJSON): each is a record."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield RecordProblem(Location(name, number), "not a JSON object", "structure")
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            yield RecordProblem(Location(name, number), "not a FHIR resource", "structure")
            continue
        key = f"{resource['resourceType']}/{resource.get('id', '')}"
        yield SourceRecord(resource["resourceType"], key, resource, Location(name, number))
