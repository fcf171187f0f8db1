"""The units of work (ADR 0051) of what operators and auditors watch.

- ``AuditUnit``: the audit trail: the log a use case's own events go to, the hash
  chain with its signed checkpoints, and the reads an auditor or a proof makes. It is
  kept here rather than in ``audit/``: the unit of work itself (``transactions``) is
  built on the audit room's model, which therefore cannot import it.
- ``OversightUnit``: the console's dashboard and lists (grouped reads over what the
  other rooms keep, the exchanges by state, how far the chain is signed), and whether
  the database answers at all (readiness).

The edges take one per request or command (``platform.units.audit()``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from payerbridge.audit.ports import AuditChain, AuditLog, AuditReader
from payerbridge.exchange.ports import ExchangeLedger
from payerbridge.oversight.ports import Oversight, Readiness
from payerbridge.transactions import RoomUnit, Transactions, UnitOfWork

__all__ = ["AuditUnit", "OversightUnit"]


@dataclass
class AuditUnit(RoomUnit):
    transactions: Transactions
    audit: AuditLog  # events recorded on their own, and an entity's trail
    chain: AuditChain[UnitOfWork]  # its head and the newest signed checkpoint
    reader: AuditReader  # AuditEvent searches, timelines, proofs (issue 53)
    clock: Callable[[], datetime]  # when an event recorded on its own happened


@dataclass
class OversightUnit(RoomUnit):
    transactions: Transactions
    oversight: Oversight  # the dashboard's counts, bulk jobs, onboardings
    exchanges: ExchangeLedger  # the exchanges by state, now
    chain: AuditChain[UnitOfWork]  # how far the audit chain is signed
    readiness: Readiness  # whether the database answers
    clock: Callable[[], datetime]  # the dashboard's now
