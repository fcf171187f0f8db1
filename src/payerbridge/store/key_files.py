"""Private keys kept as files outside the database (the data dir, or a path the operator
gives): written once, readable by the owner only."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private_file"]


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
