"""The audit chain's checkpoints and verification, wired to this deployment's keys and
sinks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from payerbridge.audit.checkpoints import CheckpointPolicy
from payerbridge.audit.model import Checkpoint
from payerbridge.audit.service import verify_audit, write_checkpoints
from payerbridge.audit.verification import ChainReport
from payerbridge.store.checkpoints import (
    CheckpointFile,
    CheckpointSinks,
    CheckpointUrl,
    audit_checkpoint_path,
    audit_signing_key_path,
    audit_witness_path,
    load_or_create_signing_key,
    load_public_key,
    read_checkpoints,
)
from payerbridge.wiring.platform import Platform

__all__ = ["audit_checkpointer", "verify_audit_chain"]


def audit_checkpointer(
    platform: Platform, *, every_seconds: float | None = None
) -> Callable[[], list[Checkpoint]]:
    """The checkpoint use case wired to this deployment's key and sinks (the key is
    created in the data dir on first use unless configured); ``every_seconds`` overrides
    the configured interval (0: checkpoint the head now)."""
    settings = platform.settings
    key = load_or_create_signing_key(audit_signing_key_path(settings))
    sinks: list[CheckpointFile | CheckpointUrl] = [CheckpointFile(audit_checkpoint_path(settings))]
    witness = audit_witness_path(settings)
    if witness is not None:
        sinks.append(CheckpointFile(witness))
    if settings.audit_checkpoint_url:
        sinks.append(CheckpointUrl(settings.audit_checkpoint_url))
    sink = CheckpointSinks(sinks)
    policy = CheckpointPolicy(
        every_events=settings.audit_checkpoint_every_events,
        every_seconds=(
            settings.audit_checkpoint_every_seconds if every_seconds is None else every_seconds
        ),
    )

    def checkpoint() -> list[Checkpoint]:
        with platform.transactions.begin() as unit:
            return write_checkpoints(
                platform.audit_chain, sink, key, unit, now=unit.now, policy=policy
            )

    return checkpoint


def verify_audit_chain(
    platform: Platform,
    *,
    checkpoints: Path | None = None,
    public_key: Path | None = None,
    witness: Path | None = None,
    against: Sequence[str] = (),
) -> ChainReport:
    """The stored chain checked against the signed checkpoints in ``checkpoints`` (the
    configured file by default) and in ``witness`` (the configured witness by default)
    with ``public_key`` (the signing key's by default); each of ``against`` (a
    checkpoint's JSON or a file of them) is proven extended by the chain."""
    settings = platform.settings
    key = load_public_key(public_key or audit_signing_key_path(settings))
    signed = CheckpointFile(checkpoints or audit_checkpoint_path(settings)).read()
    witness = witness or audit_witness_path(settings)
    witnessed = CheckpointFile(witness).read() if witness is not None else []
    held = [checkpoint for reference in against for checkpoint in read_checkpoints(reference)]
    return verify_audit(platform.audit_chain, signed, key, witnessed=witnessed, against=held)
