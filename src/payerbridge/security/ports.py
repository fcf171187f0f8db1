"""The security room's ports: the clients registered with us, the assertions they have
used, and where a client's keys are read from (``store.clients``, ``partners.keys``);
the console's operator accounts and sessions (``store.operators``); the data keys and
the columns they seal (``store.sealed_columns``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from payerbridge.security.model import (
    DatedKey,
    Operator,
    OperatorSession,
    RegisteredClient,
    Role,
    UnmaskGrant,
)
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = [
    "DatedKeys",
    "AssertionLedger",
    "ClientDirectory",
    "KeyRow",
    "KeySetSource",
    "OperatorAccounts",
    "SealedData",
    "ThrottleBuckets",
]


class ClientDirectory(Protocol):
    def get(self, client_id: ClientId) -> RegisteredClient | None: ...

    def list(self) -> list[RegisteredClient]: ...

    def add(self, unit: UnitOfWork, client: RegisteredClient, *, at: datetime) -> None:
        """Register a new client; StoreConflict when the id is taken."""
        ...

    def update(self, unit: UnitOfWork, client: RegisteredClient, *, at: datetime) -> None:
        """Replace a client's name, scopes and keys (a UDAP client registering again),
        never its NPI; what binds the NPI is replaced only by a certificate's evidence
        (an operator's approval made meanwhile is kept). It stays revoked if it was."""
        ...

    def approve(
        self, unit: UnitOfWork, client_id: ClientId, npi: str, *, by: str, at: datetime
    ) -> bool:
        """Bind a waiting client to ``npi`` on an operator's word; False when the client
        is not waiting for approval of that NPI (any more)."""
        ...

    def revoke(self, unit: UnitOfWork, client_id: ClientId, *, at: datetime) -> bool:
        """Revoke the client (its tokens stop working at once); False when there is no
        such client or it was revoked before."""
        ...


class AssertionLedger(Protocol):
    def remember(
        self, unit: UnitOfWork, client_id: ClientId, token_id: str, *, until: datetime
    ) -> None:
        """Keep an assertion's jti until it can no longer be valid; StoreConflict when the
        client used it before (a replay)."""
        ...

    def forget_expired(self, unit: UnitOfWork, *, now: datetime) -> int: ...


class KeySetSource(Protocol):
    def fetch(self, url: str) -> dict[str, Any]:
        """The JWK Set published at ``url``; PartnerUnavailable when it cannot be read."""
        ...


class ThrottleBuckets(Protocol):
    """The shared rate-limit buckets, as an unlock empties them (``store.rate_limits``)."""

    def forget_subject(self, subject: str) -> int:
        """Fill again the buckets of ``subject`` and of ``<subject>@...``; how many."""
        ...


class OperatorAccounts(Protocol):
    """Console accounts and their sessions; writes in the caller's unit of work."""

    def get(self, name: str) -> Operator | None: ...

    def list(self) -> list[Operator]: ...

    def add(self, unit: UnitOfWork, operator: Operator) -> None:
        """A new account; StoreConflict when the name is taken."""
        ...

    def set_password(self, unit: UnitOfWork, name: str, password_hash: str) -> bool:
        """False when there is no such account."""
        ...

    def set_role(self, unit: UnitOfWork, name: str, role: Role) -> bool: ...

    def disable(self, unit: UnitOfWork, name: str) -> bool:
        """Disable the account (at ``unit.now``); False when there is none or it was."""
        ...

    def open_session(self, unit: UnitOfWork, session: OperatorSession) -> None: ...

    def session(self, token_hash: str) -> OperatorSession | None: ...

    def touch_session(self, unit: UnitOfWork, token_hash: str) -> None:
        """Record a request of the session at ``unit.now``."""
        ...

    def end_session(self, unit: UnitOfWork, token_hash: str) -> bool:
        """End the session at ``unit.now``; False when it had ended."""
        ...

    def end_sessions_of(self, unit: UnitOfWork, name: str) -> int:
        """End every live session of the account (a password changed, an account
        disabled); how many."""
        ...

    def add_grant(self, unit: UnitOfWork, grant: UnmaskGrant) -> None:
        """Keep a break-glass grant (ADR 0038)."""
        ...

    def active_grant(self, name: str, *, now: datetime) -> UnmaskGrant | None:
        """The account's break-glass grant in force at ``now`` (the latest to end): one
        that needs no approval or was approved."""
        ...

    def grant(self, grant_id: str) -> UnmaskGrant | None: ...

    def pending_grants(self, *, now: datetime) -> tuple[UnmaskGrant, ...]:
        """Break-glass requests that wait for a second operator and have not lapsed."""
        ...

    def approve_grant(
        self, unit: UnitOfWork, grant_id: str, *, by: str, expires_at: datetime
    ) -> UnmaskGrant | None:
        """Approve the pending request ``grant_id`` (at ``unit.now``) until
        ``expires_at``; None when there is no such request waiting (any more)."""
        ...


class DatedKeys(Protocol):
    """The access-token keys as they are now, each with when it was made
    (``store.token_keys.TokenKeyFiles``): the same tuple until they change."""

    def dated_keys(self) -> tuple[DatedKey, ...]: ...


class KeyRow(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def kek_fingerprint(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def sealed_all_at(self) -> datetime | None: ...

    @property
    def retired_at(self) -> datetime | None: ...


class SealedData(Protocol):
    """The data keys and the sealed columns (``store.sealed_columns.SqlSealedData``)."""

    @property
    def current(self) -> str: ...

    @property
    def columns(self) -> Sequence[str]: ...

    def data_keys(self) -> Sequence[KeyRow]: ...

    def make_key(self, unit: UnitOfWork) -> str: ...

    def use(self, key_id: str) -> None: ...

    def mark_sealed_all(self, unit: UnitOfWork, key_id: str) -> None: ...

    def has_rows(self, unit: UnitOfWork, column: str) -> bool: ...

    def has_unindexed_rows(self, unit: UnitOfWork, column: str) -> bool: ...

    def pending_columns(self, unit: UnitOfWork) -> Sequence[str]:
        """The columns no pass has sealed yet (ADR 0044): they may hold plaintext."""
        ...

    def mark_columns_sealed(self, unit: UnitOfWork, columns: Sequence[str]) -> None: ...

    def reseal_batch(
        self,
        unit: UnitOfWork,
        column: str,
        *,
        after: object,
        limit: int,
        plaintext_allowed: bool,
    ) -> tuple[object, int, int]: ...

    def rewrap(self, unit: UnitOfWork, new_kek: bytes) -> list[str]: ...

    @property
    def kek_fingerprint(self) -> str: ...
