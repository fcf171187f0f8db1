"""api_clients: what binds a client to its organization (NPI), and who vouched for it

``npi_evidence`` is ``certificate`` (the UDAP certificate carries the NPI), ``operator``
(an operator registered the client or approved the pairing) or ``pending`` (claimed in a
software statement, awaiting an operator's approval: no token). Clients registered before
this revision: SMART ones were registered by an operator; UDAP ones only claimed their
NPI, so they wait for approval or a registration with a certificate that carries it.

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-25 23:55:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "npi_evidence", sa.String(length=20), nullable=False, server_default="operator"
            )
        )
        batch_op.add_column(sa.Column("npi_vouched_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("npi_vouched_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_clients SET npi_evidence = 'pending' WHERE kind = 'udap'")
    op.execute(
        "UPDATE api_clients SET npi_vouched_by = 'before-0026', npi_vouched_at = created_at "
        "WHERE kind = 'smart'"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("npi_vouched_at")
        batch_op.drop_column("npi_vouched_by")
        batch_op.drop_column("npi_evidence")
