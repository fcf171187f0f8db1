"""Envelope encryption of the PHI columns kept outside the FHIR store (ADR 0039).

A sealed value is text, so it fits the ``Text`` column it replaces, and says what it is::

    pb1:<data key id>:<base64(nonce || AES-256-GCM ciphertext and tag)>

The hot columns (the FHIR store's bodies, a bulk job's lines, a partner's answer, a
source's file: ADR 0044) are binary, without the base64 that cost four times the cipher
to decode: the ASCII bytes ``pb1:<data key id>:``, then the nonce and the ciphertext and
tag as they are. A field says which it is (``SealedField.binary``); ``seal`` makes text,
``seal_bytes`` bytes, and each refuses the other's field, as ``open`` refuses the other
form: a path wired the wrong way fails instead of writing a wrong format.

Its associated data binds it to its place: the format version, the data key's id, the
table, the column and the row's key. A value copied to another column, or to another
row of the same column (one member's record swapped for another's), does not open.

Data keys (DEKs) are random 256-bit AES-GCM keys, stored wrapped: sealed themselves
under the key-encryption key (KEK), which is kept outside the database. Nothing here does
I/O or draws randomness: keys, nonces and a way to fetch an unknown key are passed in.

The stores alone seal and open (issue 69): it is how the adapter keeps a value, not a
decision of a room, which sees plaintext only. ``security.data_rotation`` says when keys
are rotated; the ``SealedData`` port does it.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payerbridge.errors import DataKeyUnavailable

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "SEALED_PREFIX",
    "SealedField",
    "Sealer",
    "is_sealed",
    "kek_fingerprint",
    "key_id_of",
    "open_value",
    "seal_binary_value",
    "seal_value",
    "unwrap_key",
    "wrap_key",
]

SEALED_PREFIX = "pb1:"
_BINARY_PREFIX = SEALED_PREFIX.encode()
# A data key's id is 16 hex digits (``store.data_keys``), never a colon: a binary value's
# id is looked for no further than this into it.
_KEY_ID_MAX = 64
_BINARY_HEAD = len(_BINARY_PREFIX) + _KEY_ID_MAX + 1
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, random per value
_WRAP_CONTEXT = b"payerbridge/data-key/v1|"
_FINGERPRINT_CONTEXT = b"payerbridge/kek-fingerprint/v1"


@dataclass(frozen=True)
class SealedField:
    """A column whose values are sealed: the associated data names it."""

    table: str
    column: str
    binary: bool = False  # kept as bytes in a binary column, not as text

    def associated(self, key_id: str, row_key: str) -> bytes:
        return f"{SEALED_PREFIX}{key_id}|{self.table}.{self.column}|{row_key}".encode()

    def not_sealed(self) -> DataKeyUnavailable:
        return DataKeyUnavailable(
            f"{self.table}.{self.column} holds a value that is not sealed: it is refused, "
            "not read as plaintext (run `payerbridge keys rotate-data` to seal what is left)"
        )

    def altered(self) -> DataKeyUnavailable:
        return DataKeyUnavailable(
            f"a sealed value of {self.table}.{self.column} does not open under its data key: "
            "it was altered or moved from another row or column"
        )

    def wrong_form(self) -> TypeError:
        form = "bytes (seal_bytes)" if self.binary else "text (seal)"
        return TypeError(
            f"{self.table}.{self.column} is sealed as {form}: this path writes or reads it "
            "the other way"
        )


def is_sealed(stored: str | bytes | memoryview) -> bool:
    if isinstance(stored, str):
        return stored.startswith(SEALED_PREFIX)
    return bytes(stored[: len(_BINARY_PREFIX)]) == _BINARY_PREFIX


def key_id_of(stored: str | bytes | memoryview) -> str | None:
    """The id of the data key ``stored`` (text or binary) is sealed under; None when it is
    not sealed."""
    if isinstance(stored, str):
        if not is_sealed(stored):
            return None
        key_id, sep, _ = stored[len(SEALED_PREFIX) :].partition(":")
        return key_id if sep and key_id else None
    found = _binary_key_id(stored)
    return None if found is None else found[0]


def _binary_key_id(stored: bytes | memoryview) -> tuple[str, int] | None:
    """The key id a binary value names and where its nonce begins; None when it is not
    sealed."""
    head = stored if type(stored) is bytes else bytes(stored[:_BINARY_HEAD])
    end = head.find(b":", len(_BINARY_PREFIX), _BINARY_HEAD)
    if end <= len(_BINARY_PREFIX) or not head.startswith(_BINARY_PREFIX):
        return None
    try:
        return head[len(_BINARY_PREFIX) : end].decode("ascii"), end + 1
    except UnicodeDecodeError:
        return None


def _split_binary(stored: bytes | memoryview, field: SealedField) -> tuple[str, int]:
    """The data key id of a binary sealed value and where its nonce begins."""
    found = _binary_key_id(stored)
    if found is None:
        raise field.not_sealed()
    if len(stored) < found[1] + NONCE_BYTES + 16:
        raise field.altered()
    return found


def _split(text: str, field: SealedField) -> tuple[str, bytes]:
    """The data key id and the nonce and ciphertext of a sealed value."""
    if not text.startswith(SEALED_PREFIX):
        raise field.not_sealed()
    key_id, sep, body = text[len(SEALED_PREFIX) :].partition(":")
    if not sep or not key_id:
        raise field.not_sealed()
    try:
        # binascii, strict: it keeps the GIL. pybase64 was 4 us faster alone, but releases
        # the GIL on every call, and beside another busy thread (an export's second job)
        # each call then waited for it: 255 us a decode (ADR 0044).
        blob = binascii.a2b_base64(body, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise field.altered() from exc
    if len(blob) < NONCE_BYTES + 16:
        raise field.altered()
    return key_id, blob


def seal_value(
    cipher: AESGCM, key_id: str, plaintext: bytes, *, associated: bytes, nonce: bytes
) -> str:
    """``plaintext`` sealed under the data key ``key_id`` (``cipher``) for its place
    (``associated``: ``SealedField.associated``, the data the seal binds it to)."""
    sealed = cipher.encrypt(nonce, plaintext, associated)
    body = binascii.b2a_base64(nonce + sealed, newline=False).decode()
    return f"{SEALED_PREFIX}{key_id}:{body}"


def seal_binary_value(
    cipher: AESGCM, key_id: str, plaintext: bytes, *, associated: bytes, nonce: bytes
) -> bytes:
    """``plaintext`` sealed as bytes (a binary field) under ``key_id`` for its place."""
    sealed = cipher.encrypt(nonce, plaintext, associated)
    return b"".join((_BINARY_PREFIX, key_id.encode(), b":", nonce, sealed))


def open_value(
    cipher: AESGCM, key_id: str, blob: bytes, *, field: SealedField, row_key: str
) -> bytes:
    """The plaintext of a value sealed under ``key_id`` (``blob``: nonce and ciphertext)."""
    try:
        return cipher.decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], field.associated(key_id, row_key)
        )
    except InvalidTag as exc:
        raise field.altered() from exc


def kek_fingerprint(kek: bytes) -> str:
    """A short public name of a key-encryption key (an HMAC of a constant under it): which
    KEK wrapped a data key, without revealing anything of the KEK."""
    return hmac.new(kek, _FINGERPRINT_CONTEXT, hashlib.sha256).hexdigest()[:16]


def wrap_key(kek: bytes, key_id: str, key: bytes, *, nonce: bytes) -> bytes:
    """The data key ``key`` sealed under the KEK, bound to its id."""
    return nonce + AESGCM(kek).encrypt(nonce, key, _WRAP_CONTEXT + key_id.encode())


def unwrap_key(kek: bytes, key_id: str, wrapped: bytes) -> bytes:
    """The data key of ``wrapped``; DataKeyUnavailable when ``kek`` did not wrap it."""
    try:
        key = AESGCM(kek).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _WRAP_CONTEXT + key_id.encode()
        )
    except (InvalidTag, ValueError) as exc:
        raise DataKeyUnavailable(
            f"data key {key_id} does not unwrap under the key-encryption key given "
            f"(fingerprint {kek_fingerprint(kek)}): the KEK file is not the one the data "
            "keys were made with"
        ) from exc
    if len(key) != KEY_BYTES:
        raise DataKeyUnavailable(f"data key {key_id} is not a {KEY_BYTES * 8}-bit key")
    return key


class Sealer:
    """Seals values under the current data key and opens values sealed under any known one.

    ``fetch`` gives the bytes of a data key this sealer has not seen (one made by another
    process's rotation), or None when no such key exists; ``nonces`` draws a nonce.
    Safe to share between threads: a key is added once, under a lock."""

    def __init__(
        self,
        keys: dict[str, bytes],
        current: str,
        *,
        nonces: Callable[[int], bytes],
        fetch: Callable[[str], bytes | None],
    ) -> None:
        if current not in keys:
            raise DataKeyUnavailable(f"the current data key {current} is not among the keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current
        self._nonces = nonces
        self._fetch = fetch
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        return self._current

    def use(self, key_id: str) -> None:
        """Seal under ``key_id`` from now (a rotation made it the current key)."""
        self._cipher(key_id)
        self._current = key_id

    def seal(self, plaintext: bytes | str, *, field: SealedField, row_key: str) -> str:
        if field.binary:
            raise field.wrong_form()
        if isinstance(plaintext, str):
            plaintext = plaintext.encode()
        key_id = self._current
        return seal_value(
            self._ciphers[key_id],
            key_id,
            plaintext,
            associated=field.associated(key_id, row_key),
            nonce=self._nonces(NONCE_BYTES),
        )

    def seal_bytes(self, plaintext: bytes | str, *, field: SealedField, row_key: str) -> bytes:
        if not field.binary:
            raise field.wrong_form()
        if isinstance(plaintext, str):
            plaintext = plaintext.encode()
        key_id = self._current
        return seal_binary_value(
            self._ciphers[key_id],
            key_id,
            plaintext,
            associated=field.associated(key_id, row_key),
            nonce=self._nonces(NONCE_BYTES),
        )

    def open(self, stored: str | bytes | memoryview, *, field: SealedField, row_key: str) -> bytes:
        """The plaintext of a value as stored: text for a text field, bytes (or a view of
        them) for a binary one; DataKeyUnavailable when it is not sealed or does not open."""
        nonce: bytes | memoryview
        sealed: bytes | memoryview
        if isinstance(stored, str) and not field.binary:
            key_id, blob = _split(stored, field)
            nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        elif not isinstance(stored, str) and field.binary:
            # Sliced as given: bytes copied (cheaper at a body's size than making views of
            # them, measured), a driver's memoryview viewed.
            key_id, start = _split_binary(stored, field)
            nonce, sealed = stored[start : start + NONCE_BYTES], stored[start + NONCE_BYTES :]
        else:
            raise field.wrong_form()
        cipher = self._ciphers.get(key_id) or self._cipher(key_id)
        try:
            return cipher.decrypt(nonce, sealed, field.associated(key_id, row_key))
        except InvalidTag as exc:
            raise field.altered() from exc

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is not None:
            return cipher
        with self._lock:
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                key = self._fetch(key_id)
                if key is None:
                    raise DataKeyUnavailable(
                        f"a sealed value names data key {key_id}, which the database does "
                        "not hold: it cannot be opened"
                    )
                cipher = self._ciphers[key_id] = AESGCM(key)
        return cipher
