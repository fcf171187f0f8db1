"""The data keys' table (ADR 0039), on ``tables.metadata``: each data key that seals the
PHI columns outside the FHIR store, wrapped (AES-256-GCM) under the key-encryption key
kept outside the database, named by that key's fingerprint."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, String, Table

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["data_keys", "sealed_columns"]

# The newest key not retired seals; a retired key still opens what a pass has not yet
# moved. ``sealed_all_at``: when a pass left every sealed value under the key.
data_keys = Table(
    "data_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("kek_fingerprint", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
    Column("sealed_all_at", UtcDateTime(), nullable=True),
)

# Each sealed column whose values a pass has sealed once (ADR 0044): a column a later
# release began to seal may hold plaintext stored before it until its first pass ends,
# and none after. The columns ADR 0039 sealed count as sealed once any key has
# ``sealed_all_at``.
sealed_columns = Table(
    "sealed_columns",
    metadata,
    Column("name", String(200), primary_key=True),  # ``table.column``
    Column("sealed_at", UtcDateTime(), nullable=False),
)
