"""orchestration: idempotency, retries, dead letters, breakers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 01:35:08.686619
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotent_responses",
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "client_id", "idempotency_key", name=op.f("pk_idempotent_responses")
        ),
    )
    op.create_table(
        "partner_breakers",
        sa.Column("endpoint", sa.String(length=500), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("open_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name=op.f("pk_partner_breakers")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("exchange_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("policy_snapshot", sa.Text(), nullable=False),
        sa.Column("last_route", sa.Text(), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=True),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replayed_by", sa.String(length=200), nullable=True),
        sa.Column("replay_key", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"], ["exchanges.id"], name=op.f("fk_dead_letters_exchange_id_exchanges")
        ),
        sa.PrimaryKeyConstraint("exchange_id", name=op.f("pk_dead_letters")),
    )
    with op.batch_alter_table("exchange_transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_version", sa.String(length=64), nullable=True))

    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("current_step", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("replay_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_exchanges_idempotency", ["client_id", "idempotency_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_index("ix_exchanges_idempotency")
        batch_op.drop_column("replay_count")
        batch_op.drop_column("deadline_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("current_step")
        batch_op.drop_column("idempotency_key")

    with op.batch_alter_table("exchange_transitions", schema=None) as batch_op:
        batch_op.drop_column("policy_version")

    op.drop_table("dead_letters")
    op.drop_table("partner_breakers")
    op.drop_table("idempotent_responses")
