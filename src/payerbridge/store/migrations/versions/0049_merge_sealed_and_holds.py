"""merge: the sealed member data's revisions (0047, 0048) and the holds' and break-glass
principals' (0051), both made on 0046, into one head

Revision ID: 0049
Revises: 0048, 0051
Create Date: 2026-11-27 22:40:00.000000
"""

revision = "0049"
down_revision = ("0048", "0051")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # nothing to change: the two lines touch different tables


def downgrade() -> None:
    pass
