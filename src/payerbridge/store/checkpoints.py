"""Where signed audit checkpoints live outside the database, and the key that signs them.

The signing key is an Ed25519 private key in a PEM file: generated on first start into
the data dir with mode 0600 (its public half beside it), or given by path. Checkpoints
are appended as JSON lines to a file (synced before the database records them), to a
witness file outside the data dir, and posted to a URL the operator names;
``payerbridge audit verify`` reads the file and the witness.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from payerbridge.audit.model import Checkpoint
from payerbridge.config import Settings
from payerbridge.errors import InvalidInput
from payerbridge.store.key_files import write_private_file

__all__ = [
    "CheckpointFile",
    "CheckpointSinks",
    "CheckpointUrl",
    "audit_checkpoint_path",
    "audit_signing_key_path",
    "audit_witness_path",
    "load_or_create_signing_key",
    "load_public_key",
    "parse_checkpoints",
    "read_checkpoints",
]

logger = logging.getLogger(__name__)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The key at ``path``, created there (mode 0600, its public half at ``.pub``) if none."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        write_private_file(path, pem)
    key = _private_key(path)
    public = _public_path(path)
    if not public.exists():
        public.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    return key


def _public_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the audit signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"the audit signing key {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The public key that checks checkpoints: a public PEM, or the private key's half."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the audit key {path}: {exc}") from exc
    if b"PRIVATE KEY" in data:
        return _private_key(path).public_key()
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise InvalidInput(f"the audit key {path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"the audit key {path} is not an Ed25519 key")
    return key


class CheckpointFile:
    """Checkpoints as JSON lines appended to a file (opened ``O_APPEND``: a line is never
    written over), each synced to disk when written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = b"".join(orjson.dumps(c.to_json()) + b"\n" for c in checkpoints)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[Checkpoint]:
        """Every checkpoint in the file (none if there is no file); a line that is not
        one is an error naming it."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InvalidInput(f"cannot read the checkpoints {self.path}: {exc}") from exc
        return parse_checkpoints(text, str(self.path))


def read_checkpoints(reference: str) -> list[Checkpoint]:
    """Checkpoints held elsewhere: ``reference`` is a checkpoint's JSON itself (as one
    line of a checkpoint file or witness) or the path of a file holding one, an array of
    them or JSON lines."""
    if reference.lstrip().startswith(("{", "[")):
        return parse_checkpoints(reference.encode(), "the checkpoint given")
    path = Path(reference)
    if not path.is_file():
        raise InvalidInput(f"{reference}: no such checkpoint file (or give the JSON itself)")
    found = CheckpointFile(path).read()
    if not found:
        raise InvalidInput(f"{reference}: no checkpoint in it")
    return found


class CheckpointUrl:
    """Checkpoints posted as a JSON array to an operator's URL (a transparency log, a
    write-once bucket); anything but a 2xx answer fails the checkpoint, which is then
    tried again."""

    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        self.url = url
        self._timeout = timeout_seconds

    def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
        body = orjson.dumps([c.to_json() for c in checkpoints])
        response = httpx.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=self._timeout,
        )
        response.raise_for_status()


class CheckpointSinks:
    """Several sinks, published to in order (the file first: the verifier reads it)."""

    def __init__(self, sinks: Sequence[CheckpointFile | CheckpointUrl]) -> None:
        self._sinks = list(sinks)

    def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
        for sink in self._sinks:
            sink.publish(checkpoints)


def audit_signing_key_path(settings: Settings) -> Path:
    return settings.audit_signing_key or settings.data_dir / "audit-signing.key"


def audit_checkpoint_path(settings: Settings) -> Path:
    return settings.audit_checkpoint_file or settings.data_dir / "audit-checkpoints.jsonl"


def audit_witness_path(settings: Settings) -> Path | None:
    """The witness's checkpoint file (outside the data dir), if one is configured: the
    path itself, or ``audit-checkpoints.jsonl`` in it when it is a directory."""
    witness = settings.audit_witness
    if witness is not None and witness.is_dir():
        return witness / "audit-checkpoints.jsonl"
    return witness


def parse_checkpoints(text: bytes, source: str) -> list[Checkpoint]:
    """The checkpoints in ``text``: one JSON object, a JSON array of them, or JSON lines
    (as the checkpoint file and the witness hold them). A part that is not a checkpoint
    raises ``InvalidInput`` naming ``source`` and where in it."""
    stripped = text.strip()
    if stripped.startswith(b"["):
        try:
            values = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{source}: not a JSON array of checkpoints") from exc
        if not isinstance(values, list):
            raise InvalidInput(f"{source}: not a JSON array of checkpoints")
        return [_checkpoint(value, f"{source}, item {n}") for n, value in enumerate(values, 1)]
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"{source}, line {number}: not a checkpoint (not JSON)") from exc
            found.append(_checkpoint(value, f"{source}, line {number}"))
    if not found and stripped:
        raise InvalidInput(f"{source}: no checkpoint in it")
    return found


def _checkpoint(value: object, where: str) -> Checkpoint:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: not a checkpoint (a JSON object is expected)")
    try:
        return Checkpoint.from_json(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: not a checkpoint ({type(exc).__name__}: {exc})") from exc
