"""Audit events: what happened, to which entity, by whom. Never member data."""

from payerbridge.audit.model import AuditEvent

__all__ = ["AuditEvent"]
