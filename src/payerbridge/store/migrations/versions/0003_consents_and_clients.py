"""consents and API clients

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 09:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("npi", sa.String(length=10), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_clients_token_sha256")),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_npi", sa.String(length=10), nullable=False),
        sa.Column("recipient_npis", sa.Text(), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=True),
        sa.Column("performer", sa.String(length=500), nullable=False),
        sa.Column("source_reference", sa.String(length=500), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("resource_hash", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(
        "ix_consents_member", "consents", ["member_id", "role", "created_at"], unique=False
    )
    op.add_column("partners", sa.Column("credential", sa.Text(), nullable=True))
    op.add_column("exchanges", sa.Column("consent_id", sa.String(length=64), nullable=True))
    op.create_index("ix_exchanges_consent", "exchanges", ["consent_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_exchanges_consent", table_name="exchanges")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("consent_id")
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("credential")
    op.drop_index("ix_consents_member", table_name="consents")
    op.drop_table("consents")
    op.drop_table("api_clients")
