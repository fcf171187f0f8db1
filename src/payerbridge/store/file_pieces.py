"""A replicated source's file kept in sealed pieces (issue 71, ADR 0055): written a
piece at a time as it is read, and read back a piece at a time, each opened as it is
needed, so that neither way holds the file whole.

Each piece is sealed for its file and its place (``file_id|seq``): a piece altered, or
moved to another file or place, does not open. A piece removed or added, or the pieces
reordered as a whole, is caught by the file's digest, which a pass over the pieces checks
at their end; a kept file is checked so before it is mapped again, so that a tampered
file fails closed before anything is read from it.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO

from sqlalchemy import Connection, exists, insert, select

from payerbridge.backends.model import PieceStream
from payerbridge.errors import DataKeyUnavailable
from payerbridge.store.at_rest import at_rest
from payerbridge.store.sealed_fields import SOURCE_FILE_CHUNK
from payerbridge.store.source_tables import source_file_chunks

__all__ = ["PIECE_BYTES", "KeptPieces", "has_pieces", "keep_pieces"]

PIECE_BYTES = 4 * 1024 * 1024  # plaintext per piece: what one row holds at a time
_READ_BUFFER = 1 << 16


def _row_key(file_id: str, seq: int) -> str:
    return f"{file_id}|{seq}"


def has_pieces(file_id: Any) -> Any:
    """Whether the file (its id column or value) has pieces kept: a SQL condition."""
    return exists().where(source_file_chunks.c.file_id == file_id)


def keep_pieces(connection: Connection, file_id: str, stream: BinaryIO) -> int:
    """Seal and keep ``stream``'s content as the file's pieces; how many bytes it had."""
    keys = at_rest(connection)
    size = seq = 0
    while piece := stream.read(PIECE_BYTES):
        connection.execute(
            insert(source_file_chunks).values(
                file_id=file_id,
                seq=seq,
                body=keys.seal_bytes(piece, SOURCE_FILE_CHUNK, _row_key(file_id, seq)),
            )
        )
        size += len(piece)
        seq += 1
    return size


class KeptPieces:
    """``FileContent``: a kept file's pieces, read in the caller's transaction (its
    ``connection``), one piece opened at a time."""

    def __init__(self, connection: Connection, file_id: str, size: int, sha256: str) -> None:
        self._connection = connection
        self._file_id = file_id
        self._size = size
        self._sha256 = sha256

    @property
    def size(self) -> int:
        return self._size

    def open(self) -> BinaryIO:
        raw = _PieceStream(self._connection, self._file_id, self._sha256)
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)

    def verify(self) -> None:
        """Read every piece once, checking each opens and that together they are the file
        received (its digest); DataKeyUnavailable when not."""
        with self.open() as stream:
            while stream.read(PIECE_BYTES):
                pass


class _PieceStream(PieceStream):
    """The pieces as one stream. It seeks back to its start only (the X12 reader reads a
    file twice); a pass from the start to the end checks the file's digest."""

    seek_back_only = "a kept file's pieces seek back to their start only"

    def __init__(self, connection: Connection, file_id: str, sha256: str) -> None:
        self._connection, self._file_id, self._sha256 = connection, file_id, sha256
        super().__init__()

    def _begin(self) -> None:
        self._seq, self._digest = 0, hashlib.sha256()

    def _next(self) -> bytes:
        stored = self._connection.execute(
            select(source_file_chunks.c.body).where(
                source_file_chunks.c.file_id == self._file_id,
                source_file_chunks.c.seq == self._seq,
            )
        ).scalar_one_or_none()
        if stored is None:
            if self._digest.hexdigest() != self._sha256:
                raise DataKeyUnavailable(
                    f"source file {self._file_id}'s kept pieces are not the file received "
                    "(its SHA-256 differs): a piece was removed, added or moved; it is not read"
                )
            return b""
        row_key = _row_key(self._file_id, self._seq)
        piece = at_rest(self._connection).open(stored, SOURCE_FILE_CHUNK, row_key)
        self._seq += 1
        self._digest.update(piece)
        return piece
