"""PostgreSQL audit chain: the head is written once per statement, not once per row

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-24 12:40:00.000000
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# Each row still takes the next place in the chain, and the first row of a transaction
# still locks the head row until the transaction ends. Updating the head for every row
# left a new version of it per row in the transaction, each found only by walking the
# versions before it, so a bulk job's chunk of events cost quadratic time while the other
# writers waited on the lock. The rows after the first now carry the head forward in a
# setting local to the transaction (named with the transaction's id, so a value from any
# other transaction is ignored), and the head row is written once, after the statement.
# A setting is undone with a rolled-back savepoint, as the rows and the head are.
_UPGRADE = [
    """CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        xact text := pg_current_xact_id()::text;
        carried text[] := string_to_array(current_setting('payerbridge.audit_head', true), ':');
        head_seq bigint;
        head_hash text;
    BEGIN
        IF carried IS NOT NULL AND carried[1] = xact THEN
            head_seq := carried[2]::bigint;
            head_hash := carried[3];
        ELSE
            SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1 FOR UPDATE;
        END IF;
        NEW.seq := head_seq + 1;
        NEW.prev_hash := head_hash;
        NEW.chain_hash := encode(sha256(
            decode('01', 'hex') || decode(head_hash, 'hex') || decode(NEW.leaf_hash, 'hex')
        ), 'hex');
        PERFORM set_config(
            'payerbridge.audit_head', xact || ':' || NEW.seq || ':' || NEW.chain_hash, true
        );
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION audit_events_advance_head() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        carried text[] := string_to_array(current_setting('payerbridge.audit_head', true), ':');
    BEGIN
        IF carried IS NOT NULL AND carried[1] = pg_current_xact_id()::text THEN
            UPDATE audit_head SET seq = carried[2]::bigint, hash = carried[3] WHERE id = 1;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_advance_head()""",
]

_DOWNGRADE = [
    "DROP TRIGGER audit_events_advance_head ON audit_events",
    "DROP FUNCTION audit_events_advance_head()",
    """CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        head_seq bigint;
        head_hash text;
    BEGIN
        SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1 FOR UPDATE;
        NEW.seq := head_seq + 1;
        NEW.prev_hash := head_hash;
        NEW.chain_hash := encode(sha256(
            decode('01', 'hex') || decode(head_hash, 'hex') || decode(NEW.leaf_hash, 'hex')
        ), 'hex');
        UPDATE audit_head SET seq = NEW.seq, hash = NEW.chain_hash WHERE id = 1;
        RETURN NEW;
    END $$""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWNGRADE:
            op.execute(statement)
