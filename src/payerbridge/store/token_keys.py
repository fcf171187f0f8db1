"""This server's private keys, as files in a key directory outside the database:
- ``access-token-<ns>.pem``: the ES256 keys that sign our access tokens, named by when
  they were made; the newest signs, a replaced one stays accepted until the tokens it
  could have signed have expired (``security.tokens.KeysInForce``), and a deleted one
  is not accepted;
- ``client-assertion.pem``: the ES384 key with which we sign our own assertions to
  partners' token endpoints (its public half is what partners register for us).

Every server process reads the access-token keys through ``TokenKeyFiles``, which looks
at the directory at most every 50 ms (one ``stat``, and a listing at least once a second)
and reads the keys again when the listing changed: ``payerbridge keys rotate`` takes
effect in running servers within 50 ms, without a restart (ADR 0026).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from joserfc.jwk import ECKey

from payerbridge.config import Settings
from payerbridge.security.model import DatedKey
from payerbridge.store.key_files import write_private_file

__all__ = [
    "TokenKeyFiles",
    "key_dir",
    "load_client_key",
    "rotate_access_token_keys",
    "rotate_token_keys",
]

_ACCESS_PREFIX = "access-token-"
_PATTERN = f"{_ACCESS_PREFIX}*.pem"


def _read(path: Path) -> ECKey:
    key = ECKey.import_key(path.read_bytes())
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


def _new_key(directory: Path, name: str, curve: str) -> Path:
    key = ECKey.generate_key(curve, private=True)
    path = directory / name
    write_private_file(path, key.as_pem(private=True))
    return path


def _new_access_key(directory: Path) -> Path:
    return _new_key(directory, f"{_ACCESS_PREFIX}{time.time_ns():020d}.pem", "P-256")


def _made_at(path: Path) -> datetime:
    stamp = path.name.removeprefix(_ACCESS_PREFIX).removesuffix(".pem")
    return datetime.fromtimestamp(int(stamp) / 1e9, UTC)


def _names(directory: Path) -> tuple[str, ...]:
    return tuple(sorted(path.name for path in directory.glob(_PATTERN)))


class TokenKeyFiles:
    """The access-token keys of a key directory as they are now (``DatedKeys``; which are
    in force is ``security.tokens.KeysInForce``'s): one made on first use; read again
    whenever the directory's listing changes."""

    def __init__(
        self,
        directory: Path,
        *,
        keep: int = 2,
        relist_seconds: float = 1.0,
        look_seconds: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._keep = keep
        self._relist_seconds = relist_seconds
        self._look_seconds = look_seconds
        self._looked_at = float("-inf")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        if not _names(directory):
            _new_access_key(directory)
        self._stamp = -1
        self._listed_at = float("-inf")
        self._names: tuple[str, ...] = ()
        self._keys: tuple[DatedKey, ...] = ()
        self._refresh()

    def dated_keys(self) -> tuple[DatedKey, ...]:
        # A stat at most every ``look_seconds`` sees a rotation within that time: a stat on
        # every request cost a server 1.7 % of its $member-match time (the call gives up the
        # interpreter's lock and must win it back). The listing once a second covers two
        # changes within one tick of the directory's clock.
        clock = self._monotonic()
        if clock - self._looked_at >= self._look_seconds:
            self._looked_at = clock
            stamp = os.stat(self._directory).st_mtime_ns
            if stamp != self._stamp or clock - self._listed_at >= self._relist_seconds:
                self._refresh()
        return self._keys

    def _refresh(self) -> None:
        with self._lock:
            for _ in range(3):  # a key retired between the listing and its reading
                stamp = os.stat(self._directory).st_mtime_ns
                names = _names(self._directory)
                if names == self._names:
                    break
                try:
                    self._keys = self._read_keys(names)
                except FileNotFoundError:
                    continue
                self._names = names
                break
            self._stamp, self._listed_at = stamp, self._monotonic()

    def _read_keys(self, names: tuple[str, ...]) -> tuple[DatedKey, ...]:
        paths = [self._directory / name for name in reversed(names)][: self._keep]
        if not paths:
            raise LookupError(
                f"no access-token key is left in {self._directory}: "
                "run `payerbridge keys rotate` to make one"
            )
        return tuple(DatedKey(_read(path), _made_at(path)) for path in paths)


def rotate_token_keys(directory: Path, *, keep: int = 2, retire_previous: bool = False) -> str:
    """Add a new signing key and return its key id. The previous key stays accepted until
    the tokens it signed have expired, unless ``retire_previous`` (a key thought
    compromised): then every older key is deleted and its tokens stop working at once.
    Keys older than the ``keep`` newest are deleted either way."""
    directory.mkdir(parents=True, exist_ok=True)
    made = _new_access_key(directory)
    paths = sorted(directory.glob(_PATTERN), reverse=True)
    for old in paths[1 if retire_previous else keep :]:
        old.unlink()
    return str(_read(made).kid)


def load_client_key(directory: Path) -> ECKey:
    """The key we sign assertions to partners with (created on first use)."""
    path = directory / "client-assertion.pem"
    if not path.exists():
        _new_key(directory, path.name, "P-384")
    return _read(path)


def key_dir(settings: Settings) -> Path:
    return settings.key_dir or settings.data_dir / "keys"


def rotate_access_token_keys(settings: Settings, *, retire_previous: bool = False) -> str:
    """A new access-token signing key (its id); the previous one stays accepted until
    the tokens it signed expire, or not at all with ``retire_previous``. Running servers
    take it within 50 ms."""
    return rotate_token_keys(key_dir(settings), retire_previous=retire_previous)
