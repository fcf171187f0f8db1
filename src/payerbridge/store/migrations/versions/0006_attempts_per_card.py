"""member-match attempts: one row per client, demographics and card (its last attempt)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 09:00:00.000000
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keep each card's newest attempt: the brute-force guard counts the cards tried within
    # its window, and a card's last try says whether it is inside.
    op.execute(
        "DELETE FROM identity_attempts WHERE id NOT IN (SELECT MAX(id) FROM identity_attempts "
        "GROUP BY client_id, demographics_key, card_key)"
    )
    op.drop_index("ix_identity_attempts_demographics", table_name="identity_attempts")
    op.create_index(
        "uq_identity_attempts_card",
        "identity_attempts",
        ["client_id", "demographics_key", "card_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_identity_attempts_card", table_name="identity_attempts")
    op.create_index(
        "ix_identity_attempts_demographics",
        "identity_attempts",
        ["client_id", "demographics_key", "at"],
        unique=False,
    )
