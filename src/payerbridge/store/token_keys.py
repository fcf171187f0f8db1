"""This server's private keys, as files in a key directory outside the database:
- ``access-token-*.pem``: the ES256 keys that sign our access tokens; the newest signs,
  the others stay accepted until rotated out, so a rotation cuts off no issued token;
- ``client-assertion.pem``: the ES384 key with which we sign our own assertions to
  partners' token endpoints (its public half is what partners register for us).
"""

from __future__ import annotations

import time
from pathlib import Path

from joserfc.jwk import ECKey

from payerbridge.security.tokens import AccessTokenKeys
from payerbridge.store.key_files import write_private_file

__all__ = ["load_client_key", "load_token_keys", "rotate_token_keys"]

_ACCESS_PREFIX = "access-token-"


def _read(path: Path) -> ECKey:
    key = ECKey.import_key(path.read_bytes())
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


def _new_key(directory: Path, name: str, curve: str) -> Path:
    key = ECKey.generate_key(curve, private=True)
    path = directory / name
    write_private_file(path, key.as_pem(private=True))
    return path


def load_token_keys(directory: Path, *, keep: int = 2) -> AccessTokenKeys:
    """The access-token keys in ``directory`` (one created on first use), newest first."""
    paths = sorted(directory.glob(f"{_ACCESS_PREFIX}*.pem"), reverse=True)
    if not paths:
        paths = [_new_key(directory, f"{_ACCESS_PREFIX}{time.time_ns():020d}.pem", "P-256")]
    keys = tuple(_read(path) for path in paths[:keep])
    return AccessTokenKeys(signing=keys[0], accepted=keys)


def rotate_token_keys(directory: Path, *, keep: int = 2) -> AccessTokenKeys:
    """Add a new signing key; keys older than the ``keep`` newest are deleted, and tokens
    they signed stop working."""
    _new_key(directory, f"{_ACCESS_PREFIX}{time.time_ns():020d}.pem", "P-256")
    paths = sorted(directory.glob(f"{_ACCESS_PREFIX}*.pem"), reverse=True)
    for old in paths[keep:]:
        old.unlink()
    return load_token_keys(directory, keep=keep)


def load_client_key(directory: Path) -> ECKey:
    """The key we sign assertions to partners with (created on first use)."""
    path = directory / "client-assertion.pem"
    if not path.exists():
        _new_key(directory, path.name, "P-384")
    return _read(path)
