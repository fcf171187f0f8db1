"""Signed checkpoints of the audit chain (pure): what is signed, when one is due, and
whether a signature holds.

A checkpoint says "the chain's first ``seq`` events end in ``chain_head``, and the
Merkle tree over their leaves has root ``merkle_root``", signed with Ed25519 by a key
kept outside the database. Someone who can rewrite the database can re-hash the chain,
but cannot sign for it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from payerbridge.audit.model import Checkpoint, StoredCheckpoint

__all__ = [
    "CheckpointPolicy",
    "StoredCheckpoint",
    "due_checkpoints",
    "key_id",
    "sign_checkpoint",
    "signature_holds",
]


@dataclass(frozen=True)
class CheckpointPolicy:
    every_events: int  # a checkpoint at every multiple of this sequence number
    every_seconds: float  # and one at the head when the last is older than this


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _body(checkpoint: Checkpoint) -> bytes:
    """The signed bytes: every field but the signature, canonical JSON."""
    return signed_body(
        checkpoint.seq,
        checkpoint.chain_head,
        checkpoint.merkle_root,
        checkpoint.at,
        checkpoint.key_id,
    )


def signed_body(seq: int, chain_head: str, merkle_root: str, at: datetime, key: str) -> bytes:
    return orjson.dumps(
        {
            "at": _instant(at),
            "chain_head": chain_head,
            "key_id": key,
            "merkle_root": merkle_root,
            "seq": seq,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name of the public key: the start of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_checkpoint(
    seq: int, chain_head: str, merkle_root: str, at: datetime, key: Ed25519PrivateKey
) -> Checkpoint:
    name = key_id(key.public_key())
    signature = key.sign(signed_body(seq, chain_head, merkle_root, at, name))
    encoded = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    return Checkpoint(seq, chain_head, merkle_root, at, name, encoded)


def signature_holds(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    if checkpoint.key_id != key_id(public_key):
        return False
    try:
        signature = base64.urlsafe_b64decode(
            checkpoint.signature + "=" * (-len(checkpoint.signature) % 4)
        )
        public_key.verify(signature, _body(checkpoint))
    except (InvalidSignature, ValueError):
        return False
    return True


def due_checkpoints(
    *,
    last_seq: int,
    last_at: datetime | None,
    head_seq: int,
    now: datetime,
    policy: CheckpointPolicy,
) -> list[int]:
    """The sequence numbers to checkpoint now: each multiple of ``every_events`` passed
    since the last checkpoint, and the head when the last one is older than
    ``every_seconds`` (or there is none) and events came since."""
    if head_seq <= last_seq:
        return []
    step = policy.every_events
    due = list(range((last_seq // step + 1) * step, head_seq + 1, step))
    stale = last_at is None or now - last_at >= timedelta(seconds=policy.every_seconds)
    if stale and (not due or due[-1] != head_seq):
        due.append(head_seq)
    return due
