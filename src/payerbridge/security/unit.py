"""The security room's units of work (ADR 0051).

- ``SecurityUnit``: our authorization server. The clients registered with us (a
  registration, an approval or a revocation is one ``with uow:``), the token endpoint,
  what authenticating a request takes (the verifier, the client directory, the rate
  limiter), and who we are to partners (our UDAP identity, our assertions' public keys).
- ``OperatorUnit``: the console's accounts, sessions and break-glass grants, and the
  audit log a page's own events go to.
- ``DataKeysUnit``: the keys that seal the PHI columns and the key-encryption key's
  file, for their rotation (ADR 0039).

The edges take one per request or command (``platform.units.security()``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from payerbridge.audit.ports import AuditLog
from payerbridge.security.limits import RateLimiter
from payerbridge.security.model import ServerIdentity
from payerbridge.security.operators import BreakGlassPolicy, SessionPolicy
from payerbridge.security.ports import (
    ClientDirectory,
    OperatorAccounts,
    SealedData,
    ThrottleBuckets,
)
from payerbridge.security.service import TokenService
from payerbridge.security.tokens import TokenVerifier
from payerbridge.transactions import RoomUnit, Transactions

__all__ = ["DataKeysUnit", "OperatorUnit", "SecurityUnit"]


@dataclass
class SecurityUnit(RoomUnit):
    transactions: Transactions
    clients: ClientDirectory  # who may ask us for a token, with what keys and scopes
    tokens: TokenService  # the token endpoint and UDAP registration
    verifier: TokenVerifier  # checks the bearer token of every request
    limiter: RateLimiter  # requests per client (or address) and operation
    udap_identity: ServerIdentity | None  # signs our UDAP metadata, when configured
    # The public half of the key we sign assertions to partners with, as a JWK Set.
    client_jwks: dict[str, Any]


@dataclass
class OperatorUnit(RoomUnit):
    transactions: Transactions
    accounts: OperatorAccounts  # accounts, sessions, break-glass grants
    logins: RateLimiter  # sign-ins throttled (``LOGIN_RATES``) on the shared buckets
    sessions: SessionPolicy
    clock: Callable[[], datetime]
    break_glass: BreakGlassPolicy  # who may see identifiers (ADR 0046)
    buckets: ThrottleBuckets | None  # the sign-ins' shared buckets, for an unlock
    audit: AuditLog  # what a page records on its own (a view unmasked, a refusal)


@dataclass
class DataKeysUnit(RoomUnit):
    transactions: Transactions
    sealed: SealedData  # the data keys and the columns they seal
    kek_path: Path  # the key-encryption key's file in use
