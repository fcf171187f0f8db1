"""identity index, models, decisions, review queue, graph and match attempts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 03:30:00.000000
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    _create_index_tables()
    _create_models()
    _create_decisions_and_reviews()
    _create_graph_and_attempts()


def _create_index_tables() -> None:
    """The members indexed for matching and their blocking keys."""
    op.create_table(
        "identity_member_records",
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        _at("indexed_at"),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_identity_member_records")),
    )
    op.create_table(
        "identity_blocking_keys",
        sa.Column("key", sa.String(length=24), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key", "member_id", name=op.f("pk_identity_blocking_keys")),
    )
    op.create_index(
        "ix_identity_blocking_keys_member", "identity_blocking_keys", ["member_id"], unique=False
    )


def _create_models() -> None:
    """The trained match models."""
    op.create_table(
        "identity_models",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("spec_fingerprint", sa.String(length=64), nullable=False),
        _at("trained_at"),
        sa.Column("trained_on", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _at("activated_at", nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_identity_models")),
    )


def _create_decisions_and_reviews() -> None:
    """Each match decision with its evidence, and the review queue."""
    op.create_table(
        "identity_decisions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        _at("decided_at"),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_decisions")),
    )
    op.create_index(
        "ix_identity_decisions_request",
        "identity_decisions",
        ["client_id", "request_key", "decided_at"],
        unique=False,
    )
    op.create_table(
        "identity_reviews",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("candidate_ids", sa.Text(), nullable=False),
        _at("opened_at"),
        sa.Column("member_id", sa.String(length=64), nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _at("decided_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["identity_decisions.id"],
            name=op.f("fk_identity_reviews_decision_id_identity_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_reviews")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_identity_reviews_decision_id")),
    )
    op.create_index(
        "ix_identity_reviews_status", "identity_reviews", ["status", "opened_at"], unique=False
    )
    op.create_index(
        "ix_identity_reviews_request",
        "identity_reviews",
        ["client_id", "request_key"],
        unique=False,
    )


def _create_graph_and_attempts() -> None:
    """The identity graph, and the attempts the card guard counts."""
    op.create_table(
        "identity_links",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("system", sa.String(length=500), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("assigner", sa.String(length=200), nullable=True),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        _at("valid_from"),
        _at("valid_to", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_links")),
    )
    op.create_index(
        "ix_identity_links_member", "identity_links", ["member_id", "kind"], unique=False
    )
    op.create_index(
        "ix_identity_links_identifier", "identity_links", ["system", "value"], unique=False
    )
    op.create_table(
        "identity_attempts",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("demographics_key", sa.String(length=64), nullable=False),
        sa.Column("card_key", sa.String(length=64), nullable=False),
        _at("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_attempts")),
    )
    op.create_index(
        "ix_identity_attempts_demographics",
        "identity_attempts",
        ["client_id", "demographics_key", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_identity_attempts_demographics", table_name="identity_attempts")
    op.drop_table("identity_attempts")
    op.drop_index("ix_identity_links_identifier", table_name="identity_links")
    op.drop_index("ix_identity_links_member", table_name="identity_links")
    op.drop_table("identity_links")
    op.drop_index("ix_identity_reviews_request", table_name="identity_reviews")
    op.drop_index("ix_identity_reviews_status", table_name="identity_reviews")
    op.drop_table("identity_reviews")
    op.drop_index("ix_identity_decisions_request", table_name="identity_decisions")
    op.drop_table("identity_decisions")
    op.drop_table("identity_models")
    op.drop_index("ix_identity_blocking_keys_member", table_name="identity_blocking_keys")
    op.drop_table("identity_blocking_keys")
    op.drop_table("identity_member_records")
