"""audit events found by date: an AuditEvent search by ``date`` reads the range from an
index instead of walking back along ``seq`` from the newest event (ADR 0034)

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-26 22:30:00.000000
"""

from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_at", "audit_events", ["at", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_at", table_name="audit_events")
