"""api_clients.certificate_uri: the URI a UDAP client's certificates must name

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22 23:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("certificate_uri", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("certificate_uri")
