"""Private keys kept as files outside the database (the data dir, or a path the operator
gives): written once, readable by the owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from payerbridge.config import Settings

__all__ = ["identity_secret", "write_private_file"]


def write_private_file(path: Path, content: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``content`` unless it exists; True when this
    call created it. Written aside and linked into place: of two processes starting at
    once, one file wins and neither reads a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        draft.unlink()
    return True


def identity_secret(settings: Settings) -> bytes:
    """The identity hashing key: configured, else kept in the data dir (created once; of
    two processes starting at once, one key wins and neither reads a half-written file)."""
    if settings.identity_secret is not None:
        return settings.identity_secret.get_secret_value().encode()
    path = settings.data_dir / "identity.key"
    if not path.exists():
        write_private_file(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()
