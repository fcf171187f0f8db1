"""The plan's sources' tables (ADR 0031) and the quarantine (ADR 0030), on
``tables.metadata``: a replicated source's files and what they gave, a member's id at a
live source, and what failed a profile, held for operators."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = [
    "quarantined_resources",
    "source_file_chunks",
    "source_file_resources",
    "source_files",
    "source_members",
]


# A replicated source's files as they arrived (ADR 0031): kept so that a new mapping
# version can map them again; the same file twice (by digest) is one row. ``body`` holds
# a file kept whole before 0056; a file kept since is empty there, its body in pieces.
source_files = Table(
    "source_files",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source_id", String(40), nullable=False),
    Column("name", String(300), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("mapping", String(120), nullable=False),  # name@version it was last mapped with
    Column("received_at", UtcDateTime(), nullable=False),
    Column("mapped_at", UtcDateTime(), nullable=False),
    Column("report", Text, nullable=False),  # counts and problems (no member data), JSON
    UniqueConstraint("source_id", "sha256", name="uq_source_files_digest"),
)

# A file's body in pieces (issue 71, ADR 0055), each sealed for its file and place
# (``file_id|seq``): kept and read back a piece at a time, never whole.
source_file_chunks = Table(
    "source_file_chunks",
    metadata,
    Column("file_id", String(64), ForeignKey("source_files.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("body", LargeBinary, nullable=False),
)

# What each file's records gave: so that mapping it again can tell added, changed and
# no longer given resources apart.
source_file_resources = Table(
    "source_file_resources",
    metadata,
    Column("file_id", String(64), ForeignKey("source_files.id"), primary_key=True),
    Column("ref", String(200), primary_key=True),
    Index("ix_source_file_resources_ref", "ref"),
)

# A member's id at a live source (its Patient id there), read with the roster: how a
# request for our member becomes a query at the source.
source_members = Table(
    "source_members",
    metadata,
    Column("source_id", String(40), primary_key=True),
    Column("source_key", String(200), primary_key=True),
    Column("member_id", String(64), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_source_members_member", "member_id", "source_id"),
)

# What a source produced that failed a profile it claims (ADR 0030): held with the
# reasons (``issues``: the profile issues, no values), never sent; ``seq`` orders them.
quarantined_resources = Table(
    "quarantined_resources",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("id", String(64), nullable=False, unique=True),
    Column("source_id", String(200), nullable=False),
    Column("mapping_id", String(200), nullable=True),
    Column("mapping_version", String(64), nullable=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=True),
    Column("profiles", Text, nullable=False),
    Column("issues", Text, nullable=False),
    Column("held_at", UtcDateTime(), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_quarantined_resources_source", "source_id", "seq"),
)
