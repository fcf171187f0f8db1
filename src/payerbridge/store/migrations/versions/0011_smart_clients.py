"""api_clients hold public keys and scopes instead of a bearer credential's hash;
client_assertions remember every accepted assertion's jti; partners hold how we get a
token from them instead of a plaintext credential

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 23:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Static bearer credentials go: a client authenticates with a signed assertion and
    # gets short-lived tokens. A client registered before has no keys and no scopes
    # until an operator registers it again, so it is revoked here rather than left
    # half-configured.
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_constraint("uq_api_clients_token_sha256", type_="unique")
        batch_op.drop_column("token_sha256")
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="smart")
        )
        batch_op.add_column(sa.Column("scopes", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("jwks", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("jwks_url", sa.String(length=500), nullable=True))
    op.execute("UPDATE api_clients SET disabled_at = created_at WHERE disabled_at IS NULL")
    # A partner's plaintext credential is dropped, not kept: an operator registers our
    # client id at the partner instead.
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("credential")
        batch_op.add_column(sa.Column("client_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("token_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("scope", sa.Text(), nullable=True))
    op.create_table(
        "client_assertions",
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name=op.f("pk_client_assertions")),
    )
    op.create_index(op.f("ix_client_assertions_expires_at"), "client_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_client_assertions_expires_at"), table_name="client_assertions")
    op.drop_table("client_assertions")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("scope")
        batch_op.drop_column("token_url")
        batch_op.drop_column("client_id")
        batch_op.add_column(sa.Column("credential", sa.Text(), nullable=True))
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("jwks_url")
        batch_op.drop_column("jwks")
        batch_op.drop_column("scopes")
        batch_op.drop_column("kind")
        batch_op.add_column(sa.Column("token_sha256", sa.String(length=64), nullable=True))
