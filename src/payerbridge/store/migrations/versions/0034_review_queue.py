"""identity_reviews: the queue's order (risk, due_at), a version per change, the policy,
the reasons a case was opened for and the request its reviewer compares

Cases opened before this revision are ranked from their decision's evidence, as new ones
are when they open (``identity.review_queue``); their request was not kept.

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-27 10:00:00.000000
"""

import orjson
import sqlalchemy as sa
from alembic import op

from payerbridge.identity.review_queue import priority_of, review_risk, signals_of_stored
from payerbridge.store.tables import UtcDateTime

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("risk", sa.Float(precision=53), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("due_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("policy", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("opened_because", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("request_record", sa.Text(), nullable=True))
    _rank_open_and_decided_cases()
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.alter_column("due_at", existing_type=UtcDateTime(), nullable=False)
        batch_op.create_index("ix_identity_reviews_queue", ["status", "due_at", "id"])


def _rank_open_and_decided_cases() -> None:
    reviews = sa.table(
        "identity_reviews",
        sa.column("id", sa.String()),
        sa.column("decision_id", sa.String()),
        sa.column("candidate_ids", sa.Text()),
        sa.column("opened_at", UtcDateTime()),
        sa.column("risk", sa.Float()),
        sa.column("due_at", UtcDateTime()),
        sa.column("policy", sa.String()),
        sa.column("opened_because", sa.String()),
    )
    decisions = sa.table("identity_decisions", sa.column("id"), sa.column("evidence", sa.Text()))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            reviews.c.id, reviews.c.candidate_ids, reviews.c.opened_at, decisions.c.evidence
        ).join(decisions, decisions.c.id == reviews.c.decision_id)
    ).all()
    for row in rows:
        evidence = orjson.loads(row.evidence)
        signals = signals_of_stored(evidence, orjson.loads(row.candidate_ids))
        priority = priority_of(review_risk(signals), row.opened_at)
        bind.execute(
            reviews.update()
            .where(reviews.c.id == row.id)
            .values(
                risk=priority.risk,
                due_at=priority.due_at,
                policy=signals.policy_version.rsplit("-", 1)[0] or None,
                opened_because=evidence.get("review_reason"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_reviews_queue")
        for name in ("request_record", "opened_because", "policy", "due_at", "risk", "version"):
            batch_op.drop_column(name)
