"""What a backend's records are once read, and what goes wrong with one (pure).

A reader turns a file (an X12 interchange, a CSV or fixed-width extract, FHIR NDJSON)
into ``SourceRecord``s: one unit a mapping turns into resources (an 837's claim, an
834's member, a CSV row), with where it was found. A record that cannot be read or
mapped becomes a ``RecordProblem`` naming the file and line or segment and why, and
the rest of the file goes on.

A resource that fails a profile it claims is held in the quarantine (``quarantine.py``,
ADR 0030) as a ``QuarantinedResource``, with its issues (``HeldIssue``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, NewType, Protocol

__all__ = [
    "FileAt",
    "FileBytes",
    "FileContent",
    "PieceStream",
    "HeldIssue",
    "KeptSourceFile",
    "Location",
    "MappedResource",
    "NewSourceFile",
    "QuarantineId",
    "QuarantinedResource",
    "RecordProblem",
    "SourceId",
    "SourceRecord",
    "ToHold",
]


@dataclass(frozen=True)
class Location:
    """Where in a source file a record or a problem is: a line (CSV, fixed-width,
    NDJSON) or a segment position (X12, counted from 1 at ISA) and its segment id."""

    file: str
    line: int | None = None
    segment: int | None = None
    segment_id: str | None = None

    def __str__(self) -> str:
        if self.segment is not None:
            what = f" {self.segment_id}" if self.segment_id else ""
            return f"{self.file}: segment {self.segment}{what}"
        if self.line is not None:
            return f"{self.file}: line {self.line}"
        return self.file

    def to_json(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("file", self.file),
                ("line", self.line),
                ("segment", self.segment),
                ("segment_id", self.segment_id),
            )
            if v is not None
        }


@dataclass(frozen=True)
class SourceRecord:
    """One record as its reader gives it to a mapping: ``data`` is plain JSON (objects,
    arrays, strings), ``key`` the record's identity at the source (a claim number, a
    member id with its line), stable across re-reads of the same file."""

    kind: str  # what the reader found, e.g. "837P", "834", "row"
    key: str
    data: dict[str, Any]
    location: Location
    # What was read despite a defect that does not change the record's meaning (a ZIP
    # code's layout, a segment out of the guide's order, its envelope's count): its own
    # (``key`` set) and those of its envelope and context loops (``key`` None, which the
    # reader also gives once, on their own). Carried to the Provenance of what it gave.
    warnings: tuple[RecordProblem, ...] = ()


@dataclass(frozen=True)
class RecordProblem:
    """A record (or a whole file) that could not be read or mapped. ``text`` says what
    and why so that a person can fix the file or the mapping; it never carries a
    member's demographics or identifiers (a local code may be named)."""

    location: Location
    text: str
    code: str = "invalid"  # an OperationOutcome issue code: invalid, structure, code-invalid...
    key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # "error": the record (or, without a key, what the location names) is not mapped;
    # "warning": it is mapped all the same, and this is said (``kind`` groups warnings
    # in a file's report: layout, count, control-number, length, code, order...).
    severity: str = "error"
    kind: str | None = None
    # The record as read, when the reader refused it (quarantined with the reasons);
    # never in a repr, a log or a report.
    record: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def is_warning(self) -> bool:
        return self.severity == "warning"

    def __str__(self) -> str:
        return f"{self.location}: {self.text}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"location": self.location.to_json(), "code": self.code}
        out["text"] = self.text
        if self.key is not None:
            out["key"] = self.key
        if self.is_warning:
            out["severity"] = self.severity
            out["kind"] = self.kind or "other"
        return out


QuarantineId = NewType("QuarantineId", str)
SourceId = NewType("SourceId", str)  # a configured source's id (the sources file)


class _Issue(Protocol):
    """What ``payerbridge.fhir.profiles.ProfileIssue`` looks like from here."""

    @property
    def profile(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class HeldIssue:
    """Why a resource is held: one profile issue (no values, by construction)."""

    profile: str
    path: str
    rule: str
    text: str

    @classmethod
    def of(cls, issue: _Issue) -> HeldIssue:
        return cls(issue.profile, issue.path, issue.rule, issue.text)

    def to_json(self) -> dict[str, str]:
        return {"profile": self.profile, "path": self.path, "rule": self.rule, "text": self.text}


@dataclass(frozen=True)
class ToHold:
    """A resource to quarantine: what produced it and why it failed."""

    source_id: SourceId
    resource: Mapping[str, Any]
    issues: Sequence[HeldIssue]
    mapping_id: str | None = None
    mapping_version: str | None = None


@dataclass(frozen=True)
class QuarantinedResource:
    """A held resource. ``resource`` (the body) is None in lists."""

    id: QuarantineId
    seq: int  # the order held in; the cursor of a listing
    source_id: SourceId
    mapping_id: str | None
    mapping_version: str | None
    resource_type: str
    resource_id: str | None
    profiles: tuple[str, ...]  # the profiles the resource claims
    issues: tuple[HeldIssue, ...]
    held_at: datetime
    resource: dict[str, Any] | None = None


@dataclass(frozen=True)
class MappedResource:
    """A resource a source file gave, to keep as the source's: ``body`` is its JSON text
    as it is kept (``of`` serialises it once), ``patient_id`` the compartment it is in."""

    resource: dict[str, Any]
    patient_id: str | None
    body: str

    @property
    def resource_type(self) -> str:
        kind: str = self.resource["resourceType"]
        return kind

    @property
    def ref(self) -> str:
        return f"{self.resource_type}/{self.resource['id']}"


class FileContent(Protocol):
    """A file's content, read in pieces and never whole (issue 71): its size, and a
    stream to read from the start, each ``open`` a new one."""

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class FileAt:
    """A file on disk (``payerbridge sources ingest``): read where it is, each time."""

    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def open(self) -> BinaryIO:
        return self.path.open("rb")


@dataclass(frozen=True)
class FileBytes:
    """A file held as bytes (an HTTP upload, bounded by the request's size limit)."""

    data: bytes = field(repr=False)  # member data: never in a log or a traceback

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class NewSourceFile:
    """A replicated source's file as received, to keep (sealed) before it is mapped."""

    id: str
    source_id: str
    name: str
    sha256: str
    content: FileContent = field(repr=False)
    mapping: str  # the mapping's ref, ``name@version``


@dataclass(frozen=True)
class KeptSourceFile:
    """A kept file, as mapping it again needs it: ``has_body`` False once the purge or
    an erasure removed what was received (ADR 0038)."""

    id: str
    name: str
    sha256: str
    has_body: bool


# A file read a piece at a time from wherever its pieces come (the first process feeding
# the second, the sealed pieces a file is kept in), as one binary stream. It seeks back
# to its start only: the X12 reader reads a file twice.
class PieceStream(io.RawIOBase):
    """Subclasses say where a pass begins (``_begin``) and give its pieces in order
    (``_next``: empty at the end)."""

    seek_back_only = "a file read in pieces seeks back to its start only"

    def __init__(self) -> None:
        super().__init__()
        self._start()

    def _start(self) -> None:
        self._piece, self._at, self._position, self._ended = b"", 0, 0, False
        self._begin()

    def _begin(self) -> None:
        """A pass from the start begins."""
        raise NotImplementedError

    def _next(self) -> bytes:
        """The pass's next piece; empty at its end."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target not in (0, self._position):
            raise io.UnsupportedOperation(self.seek_back_only)
        if target != self._position:
            self._start()
        return target

    def readinto(self, buffer: Any) -> int:
        while self._at >= len(self._piece):
            if self._ended:
                return 0
            self._piece, self._at = self._next(), 0
            self._ended = not self._piece
        size = min(len(buffer), len(self._piece) - self._at)
        buffer[:size] = self._piece[self._at : self._at + size]
        self._at += size
        self._position += size
        return size
