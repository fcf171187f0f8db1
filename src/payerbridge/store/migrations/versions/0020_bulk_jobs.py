"""bulk_jobs and their outcomes, Groups, export members and output lines (ADR 0018)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-23 20:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

from payerbridge.store.tables import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("requester_npi", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pdex_version", sa.String(8), nullable=False),
        sa.Column("request_url", sa.String(2000), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("transaction_time", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
    )
    op.create_index("ix_bulk_jobs_status", "bulk_jobs", ["status", "updated_at"])
    op.create_index("ix_bulk_jobs_expires", "bulk_jobs", ["expires_at"])
    op.create_table(
        "bulk_match_results",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("bulk_jobs.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("result", sa.String(24), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
    )
    op.create_table(
        "member_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("bulk_jobs.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("requester_npi", sa.String(10), nullable=False),
        sa.Column("result", sa.String(24), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_member_groups_job", "member_groups", ["job_id", "seq"])
    op.create_index("ix_member_groups_client", "member_groups", ["client_id", "result"])
    op.create_index("ix_member_groups_expires", "member_groups", ["expires_at"])
    op.create_table(
        "bulk_export_members",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("bulk_jobs.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(16), nullable=True),
        sa.Column("withheld", sa.Text(), nullable=True),
    )
    op.create_table(
        "bulk_output_lines",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("bulk_jobs.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("file", sa.String(64), nullable=False),
        sa.Column("member", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(200), nullable=True),
        sa.Column("mode", sa.String(8), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
    )
    op.create_index("ix_bulk_output_lines_file", "bulk_output_lines", ["job_id", "file", "seq"])


def downgrade() -> None:
    op.drop_table("bulk_output_lines")
    op.drop_table("bulk_export_members")
    op.drop_table("member_groups")
    op.drop_table("bulk_match_results")
    op.drop_table("bulk_jobs")
