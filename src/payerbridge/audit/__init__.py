"""The audit trail: events (what happened, to which entity, by whom; never member data)
in one hash chain with signed checkpoints, and its verification (ADR 0007)."""

from payerbridge.audit.model import AuditEvent, Checkpoint
from payerbridge.audit.ports import AuditLog
from payerbridge.audit.service import verify_audit, write_checkpoints
from payerbridge.audit.verification import ChainReport

__all__ = [
    "AuditEvent",
    "AuditLog",
    "ChainReport",
    "Checkpoint",
    "verify_audit",
    "write_checkpoints",
]
