"""CSV and fixed-width extracts read into records, one per row (pure: from text lines).

The layout is the mapping's ``input_options``: for CSV the columns it needs and the key
columns; for fixed-width each field's name, start (1-based) and length. A file whose
header lacks a needed column is refused whole, naming the columns; a row that cannot be
read is a problem naming its line, and the other rows go on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from payerbridge.backends.model import Location, RecordProblem, SourceRecord

__all__ = ["read_csv", "read_fixed_width"]

Records = Iterator[SourceRecord | RecordProblem]


def _key(row: dict[str, str], key_fields: list[str], line: int) -> str:
    if not key_fields:
        return f"line:{line}"
    return "|".join(row.get(k, "") for k in key_fields)


def read_csv(lines: Iterable[str], name: str, options: dict[str, Any]) -> Records:
    """Rows of a CSV extract with a header line. Options: ``delimiter`` (default ``,``),
    ``columns`` (those the mapping needs), ``key`` (the columns that identify a row)."""
    delimiter = str(options.get("delimiter", ","))
    needed = [str(c) for c in options.get("columns", [])]
    key_fields = [str(c) for c in options.get("key", [])]
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        yield RecordProblem(Location(name, 1), "the file is empty: a header line is needed")
        return
    except csv.Error as exc:
        yield RecordProblem(Location(name, 1), f"the header line is not CSV ({exc})", "structure")
        return
    missing = [c for c in [*needed, *key_fields] if c not in header]
    if missing:
        yield RecordProblem(
            Location(name, 1),
            f"the header lacks the column(s) {', '.join(dict.fromkeys(missing))} that the "
            "mapping needs; no row was read",
            "structure",
        )
        return
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RecordProblem(Location(name, reader.line_num), f"not CSV ({exc})", "structure")
            continue
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield RecordProblem(
                Location(name, line),
                f"{len(values)} fields where the header has {len(header)}",
                "structure",
            )
            continue
        row = {h: v.strip() for h, v in zip(header, values, strict=True)}
        yield SourceRecord("row", _key(row, key_fields, line), row, Location(name, line))


def read_fixed_width(lines: Iterable[str], name: str, options: dict[str, Any]) -> Records:
    """Records of a fixed-width extract, one per line. Options: ``fields`` (a list of
    ``{name, start, length}``, start counted from 1), ``key``, ``skip_lines`` (a header
    to pass over)."""
    fields = [(str(f["name"]), int(f["start"]) - 1, int(f["length"])) for f in options["fields"]]
    width = max(start + length for _, start, length in fields)
    key_fields = [str(c) for c in options.get("key", [])]
    skip = int(options.get("skip_lines", 0))
    for number, raw in enumerate(lines, 1):
        text = raw.rstrip("\r\n")
        if number <= skip or not text.strip():
            continue
        if len(text) < width:
            yield RecordProblem(
                Location(name, number),
                f"the line is {len(text)} characters long; the layout needs {width}",
                "structure",
            )
            continue
        row = {field: text[start : start + length].strip() for field, start, length in fields}
        yield SourceRecord("row", _key(row, key_fields, number), row, Location(name, number))
