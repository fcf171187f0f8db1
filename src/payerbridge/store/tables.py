"""Table definitions (SQLAlchemy Core). Alembic migrations create them; nothing else does.

The tables of the sources (ADR 0031) and the quarantine (ADR 0030), the plan-year
onboardings (ADR 0019), the console's accounts and sessions (ADR 0035), the legal holds
(ADR 0038), the data keys that seal PHI at rest (ADR 0039), the obligation rows
(ADR 0037) and the standing pulls (ADR 0040) are defined beside, on the same metadata
(``schema.py``), and gathered here: ``tables`` names every table.

Member data is kept as FHIR JSON with the few search columns the exchange needs;
everything an exchange does is kept as rows that only ever grow (transitions, audit).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from payerbridge.store.compliance_tables import obligation_clocks
from payerbridge.store.key_tables import data_keys, sealed_columns
from payerbridge.store.lifecycle_tables import legal_holds
from payerbridge.store.onboarding_tables import (
    onboarding_chunks,
    onboarding_members,
    onboardings,
)
from payerbridge.store.operator_tables import (
    operator_sessions,
    operators,
    unmask_grants,
)
from payerbridge.store.proposal_tables import partner_proposals
from payerbridge.store.provider_tables import opt_out_choices, provider_attributions
from payerbridge.store.pull_tables import pull_schedules
from payerbridge.store.schema import UtcDateTime, metadata
from payerbridge.store.source_tables import (
    quarantined_resources,
    source_file_chunks,
    source_file_resources,
    source_files,
    source_members,
)

__all__ = [
    "UtcDateTime",
    "source_file_chunks",
    "source_file_resources",
    "source_files",
    "source_members",
    "api_clients",
    "client_assertions",
    "audit_checkpoints",
    "audit_events",
    "audit_head",
    "bulk_export_members",
    "bulk_jobs",
    "bulk_match_results",
    "bulk_output_lines",
    "consents",
    "data_keys",
    "dead_letters",
    "disclosure_snapshot_refs",
    "disclosure_snapshots",
    "exchange_payloads",
    "exchange_transitions",
    "exchanges",
    "fhir_resources",
    "fhir_tokens",
    "idempotent_responses",
    "identity_attempts",
    "rate_limits",
    "identity_blocking_keys",
    "identity_decisions",
    "identity_links",
    "identity_member_records",
    "identity_models",
    "identity_reviews",
    "legal_holds",
    "member_groups",
    "metadata",
    "obligation_clocks",
    "pull_schedules",
    "opt_out_choices",
    "provider_attributions",
    "onboarding_chunks",
    "quarantined_resources",
    "sealed_columns",
    "onboarding_members",
    "onboardings",
    "operator_sessions",
    "operators",
    "unmask_grants",
    "partner_breakers",
    "partner_proposals",
    "partners",
    "webhook_deliveries",
    "webhook_subscriptions",
]


# One row per FHIR resource. ``ref`` is "Type/id"; ``patient_id`` is the Patient
# compartment the resource belongs to (the Patient's own id for a Patient), which
# is what $everything and later bulk export stream by.
fhir_resources = Table(
    "fhir_resources",
    metadata,
    Column("ref", String(200), primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("version_id", Integer, nullable=False, default=1),
    Column("last_updated", UtcDateTime(), nullable=False),
    Column("source", String(200), nullable=False),
    Column("body", LargeBinary, nullable=False),  # sealed as bytes (ADR 0044)
    Index("ix_fhir_resources_patient", "patient_id", "resource_type"),
    Index("ix_fhir_resources_source", "source"),
    Index("ix_fhir_resources_patient_ref", "patient_id", "ref"),
)

# A member's $everything as decided when its first page was asked: which resources go,
# in which order, and which were withheld (their references are stripped from what goes).
# Later pages read from here, so paging is stable and no page holds the whole history.
disclosure_snapshots = Table(
    "disclosure_snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("total", Integer, nullable=False),  # the member's own records that go
    Column("query", Text, nullable=False),  # the parameters, as JSON, for the next links
    Column("withheld", Text, nullable=False),  # JSON list of Type/id
    # The code sets and data scope that judged it (None: made before 0053).
    Column("judged_by", String(200), nullable=True),
)
disclosure_snapshot_refs = Table(
    "disclosure_snapshot_refs",
    metadata,
    Column(
        "snapshot_id",
        String(36),
        ForeignKey("disclosure_snapshots.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("ref", String(200), nullable=False),
    Column("mode", String(8), nullable=False),  # match (the member's) or include (shared)
    Column("version_id", Integer, nullable=True),  # the version judged (None: before 0053)
)

# Token search index: identifiers (any type) and Coverage.subscriberId.
# ``system`` is '' when the identifier has none, so value-only searches use the index.
# Searched by ``value_key``, a keyed blind key of the value (ADR 0044): ``value`` is kept
# empty (it held the value itself before revision 0047; the first start empties it).
fhir_tokens = Table(
    "fhir_tokens",
    metadata,
    Column("ref", String(200), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("system", String(500), nullable=False),
    Column("value", String(200), nullable=False),
    Column("value_key", String(64), nullable=True),
    Index("ix_fhir_tokens_value_key", "resource_type", "param", "value_key"),
    Index("ix_fhir_tokens_ref", "ref"),
)

partners = Table(
    "partners",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("npi", String(10), nullable=False),
    Column("base_url", String(500), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # How we get a token from the partner (none, SMART Backend Services or UDAP B2B): our
    # client id there, its token endpoint (else discovered) and the scope we ask. No
    # secret is kept: we sign with our own key or certificate, held outside the database.
    Column("client_id", String(200), nullable=True),
    Column("token_url", String(500), nullable=True),
    Column("scope", Text, nullable=True),
    Column("auth", String(8), nullable=False, server_default="none"),
    # The partner's CapabilityStatement as routing reads it (JSON), and when it was read.
    Column("capabilities", Text, nullable=True),
    Column("capabilities_read_at", UtcDateTime(), nullable=True),
    # How an operator runs it (JSON: suspended or not, maintenance windows); null: active.
    Column("operations", Text, nullable=True),
    # Where it answers (JSON list: url, priority, status, versions, source); null: at
    # base_url alone (ADR 0060).
    Column("endpoints", Text, nullable=True),
)

# Systems allowed to ask our token endpoint for access tokens (SMART Backend Services
# clients registered by an operator, UDAP clients registered by themselves): only public
# keys are kept, never a secret.
api_clients = Table(
    "api_clients",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("npi", String(10), nullable=False),
    Column("kind", String(10), nullable=False, server_default="smart"),
    Column("scopes", Text, nullable=False, server_default=""),
    Column("jwks", Text, nullable=True),
    Column("jwks_url", String(500), nullable=True),
    Column("certificate_uri", String(500), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    # What binds the client to its NPI: certificate, operator, or pending (no token).
    Column("npi_evidence", String(20), nullable=False, server_default="operator"),
    Column("npi_vouched_by", String(200), nullable=True),
    Column("npi_vouched_at", UtcDateTime(), nullable=True),
)

# The jti of every client assertion our token endpoint accepted, until the assertion
# could no longer be valid: a second use is a replay.
client_assertions = Table(
    "client_assertions",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# Every consent we hold, as structured fields (never an opaque blob), with the raw HRex
# Consent kept beside them. ``role`` says which side we are on: ``disclose`` (a consent a
# requesting payer presented to us at $member-match) or ``receive`` (a member's opt-in
# captured by us as the new payer, sent with each $member-match we make).
consents = Table(
    "consents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("period_start", UtcDateTime(), nullable=False),
    Column("period_end", UtcDateTime(), nullable=False),
    Column("source_npi", String(10), nullable=False),
    Column("recipient_npis", Text, nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("partner_id", String(64), nullable=True),
    Column("performer", String(500), nullable=False),
    Column("source_reference", String(500), nullable=False),
    Column("resource", Text, nullable=False),
    Column("resource_hash", String(64), nullable=False),
    Column("policy_version", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revoked_by", String(200), nullable=True),
    Index("ix_consents_member", "member_id", "role", "created_at"),
)

_REASON_GIVEN = text("error_code IS NOT NULL")
_HAS_REASON: dict[str, Any] = {"sqlite_where": _REASON_GIVEN, "postgresql_where": _REASON_GIVEN}

exchanges = Table(
    "exchanges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("state", String(32), nullable=False),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("client_id", String(200), nullable=False),
    # The submitted request (demographics, cards, consent): stored, never logged.
    Column("request", Text, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("matched_member_ref", String(200), nullable=True),
    Column("member_identifier", String(200), nullable=True),
    Column("imported_patient_id", String(64), nullable=True),
    Column("resource_count", Integer, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_text", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The client's Idempotency-Key: one exchange per (client, key).
    Column("idempotency_key", String(200), nullable=True),
    # Where the workflow stands: the step it is on, its attempts, when it tries next.
    Column("current_step", String(32), nullable=True),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    # When the step whose call waits began: a workflow resumes it from the row (ADR 0004).
    Column("step_started_at", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("deadline_at", UtcDateTime(), nullable=True),
    Column("replay_count", Integer, nullable=False, default=0, server_default="0"),
    # The member's opt-in this exchange runs under (``consents`` with role ``receive``).
    Column("consent_id", String(64), nullable=True),
    # The seq of its last transition, moved with it under the row's lock (ADR 0004).
    Column("last_seq", Integer, nullable=False, default=0, server_default="0"),
    # The HRex version whose $member-match shape the route chose (``fhir.versions``).
    Column("request_shape", String(16), nullable=True),
    # How it reads the member's record: "$everything", or the search and its types.
    Column("data_path", Text, nullable=True),
    # Whom its data is held for (the client's member, hashed: ``exchange.received.reconcile``).
    Column("member_key", String(64), nullable=True),
    Column("request_id", String(128), nullable=True),  # the X-Request-ID that submitted it
    # When the purge cut ``request`` to what the audit needs (``lifecycle``, ADR 0038).
    Column("request_minimised_at", UtcDateTime(), nullable=True),
    Column("since", UtcDateTime(), nullable=True),  # asks only what changed after (``_since``)
    Index("ix_exchanges_state", "state", "created_at"),
    # Searches page newest first: each filter leads an index on (..., created_at, id).
    Index("ix_exchanges_created", "created_at", "id"),
    Index("ix_exchanges_client_created", "client_id", "created_at", "id"),
    Index("ix_exchanges_partner_created", "partner_id", "created_at", "id"),
    Index("ix_exchanges_member_created", "member_key", "created_at", "id"),
    # Only exchanges that carry a reason: most end without one, and never write these.
    Index("ix_exchanges_reason_created", "error_code", "created_at", "id", **_HAS_REASON),
    Index("ix_exchanges_request", "request_id"),
    # A metrics scrape counts exchanges by state from ``ix_exchanges_state`` and by
    # state and reason from this one, each from the index alone (``store.readings``).
    Index("ix_exchanges_state_reason", "state", "error_code", **_HAS_REASON),
    Index("ix_exchanges_consent", "consent_id"),
    Index("ix_exchanges_idempotency", "client_id", "idempotency_key", unique=True),
)

exchange_transitions = Table(
    "exchange_transitions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("exchange_id", String(64), ForeignKey("exchanges.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason_code", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("policy_version", String(64), nullable=True),
    Index("ix_exchange_transitions_exchange", "exchange_id", "seq", unique=True),
)

# Exchanges whose retry budget ran out, with what an operator needs to replay them.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("exchange_id", String(64), ForeignKey("exchanges.id"), primary_key=True),
    Column("step", String(32), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("policy_snapshot", Text, nullable=False),
    Column("last_route", Text, nullable=True),
    Column("request_sha256", String(64), nullable=False),
    Column("payload_sha256", String(64), nullable=True),
    Column("dead_lettered_at", UtcDateTime(), nullable=False),
    Column("replayed_at", UtcDateTime(), nullable=True),
    Column("replayed_by", String(200), nullable=True),
    Column("replay_key", String(200), nullable=True),
)

# Circuit breaker per partner endpoint, shared by every worker through the database.
partner_breakers = Table(
    "partner_breakers",
    metadata,
    Column("endpoint", String(500), primary_key=True),
    Column("partner_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("open_until", UtcDateTime(), nullable=True),
    Column("probe_until", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# A partner that announced a rate limit: when its next call is due if calls came evenly
# (``routing.operations.RateLimit``), moved under the row's lock by every worker.
partner_rates = Table(
    "partner_rates",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("due_at", UtcDateTime(), nullable=False),
)

# Old-payer side: the answer given to an (client, Idempotency-Key), replayed verbatim
# to a retried call so the retry has no second side effect. Answers may hold member data:
# they are purged after the retention period.
idempotent_responses = Table(
    "idempotent_responses",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_idempotent_responses_created", "created_at"),
)

# The raw Bundle received from the old payer, kept until (and after) it is normalized,
# so a crash between receiving and storing never needs a second partner call.
exchange_payloads = Table(
    "exchange_payloads",
    metadata,
    Column("exchange_id", String(64), ForeignKey("exchanges.id"), primary_key=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # sealed as bytes (ADR 0044)
)

# Append-only and hash-chained (ADR 0007). Written only through store/audit.py, in the
# same transaction as the change it records; triggers refuse UPDATE and DELETE. No member
# demographics or identifiers in ``detail``.
audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(64), nullable=False),
    Column("entity_id", String(200), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("detail", Text, nullable=True),
    # The event's place in the chain: a gap-free sequence, its RFC 6962 leaf hash, the
    # chain hash before it and its own (hex SHA-256).
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Index("ix_audit_events_entity", "entity_type", "entity_id"),
    Index("ix_audit_events_request", "request_id"),  # a partner's proofs, by its request
    Index("ix_audit_events_at", "at", "seq"),  # an AuditEvent search by date
    UniqueConstraint("seq"),
)

# The audit tree's kept subtree roots (``audit/proofs.py``), a cache its signed roots check.
audit_tree_nodes = Table(
    "audit_tree_nodes",
    metadata,
    Column("level", Integer, primary_key=True),
    Column("idx", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("hash", String(64), nullable=False),
)

# The chain's last event (one row, id 1): what the next event links to. Writers lock it
# (PostgreSQL) or read it in their write transaction (SQLite).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("hash", String(64), nullable=False),
)

# The checkpoints this database has signed, with the Merkle frontier the next continues
# from. A record only: the verifier trusts the signed copies kept outside the database.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("chain_head", String(64), nullable=False),
    Column("merkle_root", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    Column("frontier", Text, nullable=False),
)

# -- identity (old-payer side) ---------------------------------------------------------------
# Members as matching sees them: the standardised record of each Patient loaded from
# the payer's own files, and its blocking keys (keyed hashes, no demographics).
identity_member_records = Table(
    "identity_member_records",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("record", Text, nullable=False),
    Column("indexed_at", UtcDateTime(), nullable=False),
    # The member's rows in identity_blocking_keys (a JSON list), by which they are deleted
    # when it is indexed again: that table keeps no index by member (ADR 0020).
    Column("blocking_keys", Text, nullable=False),
)

# Read only by key. Without a rowid on SQLite the primary key is the table itself: one
# b-tree written per row instead of three.
identity_blocking_keys = Table(
    "identity_blocking_keys",
    metadata,
    Column("key", String(24), primary_key=True),
    Column("member_id", String(64), primary_key=True),
    sqlite_with_rowid=False,
)

# Trained match models, a versioned artefact kept with the data; the newest
# activated one is used.
identity_models = Table(
    "identity_models",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("spec_fingerprint", String(64), nullable=False),
    Column("trained_at", UtcDateTime(), nullable=False),
    Column("trained_on", Integer, nullable=False),
    Column("summary", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("activated_at", UtcDateTime(), nullable=True),
)

# Every match decision with its evidence (levels, weights, member ids; no demographics).
# ``request_key`` is a keyed hash of the standardised request: the same request
# finds its reviewed decision again.
identity_decisions = Table(
    "identity_decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("member_id", String(64), nullable=True),
    Column("client_id", String(200), nullable=False),
    Column("request_key", String(64), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("evidence", Text, nullable=False),
    Index("ix_identity_decisions_request", "client_id", "request_key", "decided_at"),
    Index("ix_identity_decisions_decided", "decided_at", "outcome"),  # the dashboard's
)

# The manual review queue: one case per ``review`` decision.
identity_reviews = Table(
    "identity_reviews",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "decision_id", String(64), ForeignKey("identity_decisions.id"), nullable=False, unique=True
    ),
    Column("status", String(16), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("request_key", String(64), nullable=False),
    Column("candidate_ids", Text, nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("member_id", String(64), nullable=True),
    Column("reviewer", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    # Each change (a decision, a reopening) adds one: a change is written only on the
    # version its changer read (a conditional UPDATE), so a stale page changes nothing.
    Column("version", Integer, nullable=False, server_default="1"),
    # The queue's order: risk in [0, 1] and when the case is due (identity.review_queue).
    Column("risk", Float(precision=53), nullable=False, server_default="0"),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("policy", String(64), nullable=True),  # the match policy's name
    Column("opened_because", String(500), nullable=True),  # the decision's review_reason
    # The request as matching read it (a StandardRecord's JSON): demographics, kept for
    # the case's reviewer, as identity_member_records keeps the members'.
    Column("request_record", Text, nullable=True),
    Index("ix_identity_reviews_status", "status", "opened_at"),
    Index("ix_identity_reviews_request", "client_id", "request_key"),
    Index("ix_identity_reviews_queue", "status", "due_at", "id"),
)

# The identity graph: our member and the identifiers others know them by (UMBs we
# hand out, other payers' member and subscriber ids, merged member ids). Rows are
# never deleted: ending a link sets ``valid_to``, so lineage stays queryable. ``value``
# is sealed (ADR 0039) and found by ``value_key``, a keyed hash of it.
identity_links = Table(
    "identity_links",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("member_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("system", String(500), nullable=False),
    Column("value", Text, nullable=False),
    Column("assigner", String(200), nullable=True),
    Column("decision_id", String(64), nullable=True),
    Column("recorded_by", String(200), nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_to", UtcDateTime(), nullable=True),
    Column("value_key", String(64), nullable=True),  # None: stored before sealing (0042)
    Index("ix_identity_links_member", "member_id", "kind"),
    Index("ix_identity_links_value_key", "value_key", "system"),
)

# $member-match attempts, for the brute-force guard (HRex mm-7): keyed hashes of the
# demographics and of the card data, never the values.
identity_attempts = Table(
    "identity_attempts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("client_id", String(200), nullable=False),
    Column("demographics_key", String(64), nullable=False),
    Column("card_key", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    # One row per card a client tried with the same demographics: its last attempt.
    Index("uq_identity_attempts_card", "client_id", "demographics_key", "card_key", unique=True),
)

# The rate limits' shared state (ADR 0025): per subject (a client id, or "address:" and
# the caller's address) and operation, the bucket's theoretical arrival time (GCRA) in
# seconds since the epoch; ``leased``: how many requests the last lease took.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("subject", String(300), primary_key=True),
    Column("operation", String(200), primary_key=True),
    Column("tat", Float(precision=53), nullable=False),
    Column("leased", Integer, nullable=False),
)

# Webhook subscriptions: a client's URL that is told of its exchanges' state changes (an
# operator's, of every exchange). The signing secret must be kept to sign with.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    Index("ix_webhook_subscriptions_client", "client_id"),
)

# The outbox of webhook deliveries, one per subscription and transition, written in the
# transition's unit of work; each has a durable workflow that posts and retries it.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subscription_id", String(64), ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("exchange_id", String(64), ForeignKey("exchanges.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_event", "subscription_id", "exchange_id", "seq", unique=True),
)


# Bulk jobs (ADR 0018): the row is the job's checkpoint, ``done`` its cursor; the
# request is kept as received, for a resumed run to read again.
bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("requester_npi", String(10), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pdex_version", String(8), nullable=False),
    Column("request_url", String(2000), nullable=False),
    Column("request_body", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("lines", Integer, nullable=False),  # output lines written: the next one's seq
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("transaction_time", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("output", Text, nullable=True),  # JSON list of {type, name, count}
    Column("error", String(500), nullable=True),
    Index("ix_bulk_jobs_status", "status", "updated_at"),
    Index("ix_bulk_jobs_expires", "expires_at"),
)

# Each member's outcome in a $bulk-member-match job, committed with the job's cursor.
bulk_match_results = Table(
    "bulk_match_results",
    metadata,
    Column("job_id", String(36), ForeignKey("bulk_jobs.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("result", String(24), nullable=False),
    Column("patient_id", String(64), nullable=True),
)

# The result Groups of $bulk-member-match, owned by the job's client.
member_groups = Table(
    "member_groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), ForeignKey("bulk_jobs.id"), nullable=False),
    Column("seq", Integer, nullable=False),  # the Group's place among its job's
    Column("client_id", String(200), nullable=False),
    Column("requester_npi", String(10), nullable=False),
    Column("result", String(24), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_member_groups_job", "job_id", "seq"),
    Index("ix_member_groups_client", "client_id", "result"),
    Index("ix_member_groups_expires", "expires_at"),
)

# Each member of an export job: the policy its consent allowed when the job reached it
# (None: skipped) and what its decision withheld, for the download to release by.
bulk_export_members = Table(
    "bulk_export_members",
    metadata,
    Column("job_id", String(36), ForeignKey("bulk_jobs.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("policy", String(16), nullable=True),
    Column("withheld", Text, nullable=True),  # JSON list of Type/id
    Column("code_sets", String(200), nullable=True),  # the label of those it was judged by
    Column("withheld_count", Integer, nullable=True),  # as $everything's audit counts them
)

# A job's output lines in the order written: a member's resource (its reference, its body
# as released and the version that was judged: a download sends that body while the
# resource is still at that version), or a body of our own (a transmitter Provenance, an
# OperationOutcome of the error file; no reference).
bulk_output_lines = Table(
    "bulk_output_lines",
    metadata,
    Column("job_id", String(36), ForeignKey("bulk_jobs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("file", String(64), nullable=False),  # the resource type of its file
    Column("member", Integer, nullable=False),  # the member's position in the job
    Column("ref", String(200), nullable=True),
    Column("mode", String(8), nullable=True),
    Column("body", LargeBinary, nullable=True),  # sealed as bytes (ADR 0044)
    Column("version_id", Integer, nullable=True),
    Index("ix_bulk_output_lines_file", "job_id", "file", "seq"),
)
