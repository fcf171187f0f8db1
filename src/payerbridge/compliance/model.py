"""What the compliance room's stores keep (pure): the obligations the platform acts on
(by id), an obligation row, its subject and where it stands (ADR 0037; the rules that
decide it are ``obligations.py`` and ``clocks.py``'s), a legal hold on a member's data
(ADR 0038; who may place and release one is ``lifecycle.py``'s), and how long each table
keeps what it holds (ADR 0038's retention catalogue).

Every table of the schema is declared in ``CATALOGUE``, the tables without PHI too: the
purge and the erasure act on what is declared, so a table that is not declared is
refused at start-up (``undeclared``) rather than left to keep member data nobody tracks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "ANSWER_WITHIN",
    "ASKING",
    "CATALOGUE",
    "CLOSED_ERASED",
    "CLOSED_REVOKED",
    "CLOSED_WITHDRAWN",
    "QUARTERLY",
    "REQUEST_AFTER_ENROLMENT",
    "REQUIRED",
    "RUN_OFF",
    "Hold",
    "ObligationClock",
    "Retention",
    "Standing",
    "StandingQuery",
    "Subject",
    "SubjectType",
    "TableRetention",
    "Tally",
    "phi_tables",
    "undeclared",
]

# The obligations the platform acts on, by id: a file without one of them is refused.
REQUEST_AFTER_ENROLMENT = "request-after-enrolment"
ANSWER_WITHIN = "answer-within-one-business-day"
QUARTERLY = "concurrent-coverage-quarterly"  # the standing pulls' cadence (ADR 0040)
RUN_OFF = "run-off"
REQUIRED = frozenset({REQUEST_AFTER_ENROLMENT, ANSWER_WITHIN, QUARTERLY, RUN_OFF})
# The requester's obligations an exchange meets by asking: its first, or a pull's period.
ASKING = (REQUEST_AFTER_ENROLMENT, QUARTERLY, RUN_OFF)


class Standing(StrEnum):
    """Where an obligation stands: done in time or late, or not done yet."""

    MET = "met"
    MISSED = "missed"
    AT_RISK = "at_risk"
    PENDING = "pending"
    NOT_STARTED = "not_started"  # an event it counts from has not happened
    # No longer owed: the member's opt-in was revoked, or the member left (erased), while
    # it ran. Neither met nor missed; the row's reason says which (ADR 0037, amendment).
    CLOSED = "closed"


class SubjectType(StrEnum):
    EXCHANGE = "exchange"
    REVIEW = "review"
    REQUEST = "request"
    PULL = "pull"  # a period a standing pull owes, until its pull's exchange takes it
    BULK_JOB = "bulk-job"  # old payer: a $bulk-member-match or payer-to-payer export job
    ONBOARDING = "onboarding"  # new payer: one member of a bulk onboarding ("<run>:<n>")
    ONBOARDING_CHUNK = "onboarding-chunk"  # new payer: a chunk's bulk answer, observed


# Why a row was closed (its reason code): no longer owed, neither met nor missed.
CLOSED_REVOKED = "opt-in-revoked"
CLOSED_ERASED = "member-erased"  # the member left the plan and their data was erased
CLOSED_WITHDRAWN = "cancelled-by-requester"  # the requester withdrew its bulk request


@dataclass(frozen=True)
class Subject:
    """What an obligation row is about."""

    type: SubjectType
    id: str


@dataclass(frozen=True)
class ObligationClock:
    """One obligation row. ``reason``: a short code (an exchange's reason code, never PHI)
    saying what last held the subject up while the clock ran."""

    id: str
    obligation: str
    obligation_version: str
    subject: Subject
    partner_id: str | None
    started_at: datetime
    due_at: datetime | None
    done_at: datetime | None
    standing: Standing
    reason: str | None
    updated_at: datetime


# A count's key: (obligation, subject type, standing, reason code, whether done).
Tally = tuple[str, SubjectType, Standing, str | None, bool]


@dataclass(frozen=True)
class StandingQuery:
    """The rows a report lists: those started in [``start``, ``end``) that stand at one
    of ``standings`` at ``now`` (``risk``: how long before its due time a row of each
    obligation is at risk), of ``obligation`` and about ``subject_types`` only when
    given, the earliest first, the first ``limit``."""

    start: datetime
    end: datetime
    now: datetime
    risk: Mapping[str, timedelta]
    standings: Collection[Standing]
    obligation: str | None = None
    subject_types: Collection[SubjectType] | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Hold:
    id: str
    member_id: str
    reason: str
    placed_by: str
    placed_at: datetime
    released_by: str | None = None
    released_at: datetime | None = None
    # Who may release it besides counsel: the principal that placed it (None for a hold
    # placed before ADR 0046: counsel alone).
    placed_by_principal: str | None = None


class Retention(StrEnum):
    # A member's own record (their FHIR compartment, identity index, links, consents):
    # kept while the plan holds them; a member's erasure removes it.
    MEMBER_RECORD = "member-record"
    # What a partner or a source sent as received: gone once it is normalized and the
    # grace has passed (``raw_payload_grace_hours``).
    RAW_PAYLOAD = "raw-payload"
    # A request's demographics: cut to what the audit needs once the request has ended
    # and the grace has passed.
    REQUEST = "request-demographics"
    # Dropped at its own expiry (stored answers, $everything pages, bulk files).
    EXPIRING = "expiring"
    # The proof of what happened: append-only, ids and hashes, no PHI.
    AUDIT = "audit"
    # Configuration and the platform's own bookkeeping: no PHI.
    OPERATIONAL = "operational"


@dataclass(frozen=True)
class TableRetention:
    retention: Retention
    phi: tuple[str, ...] = ()  # the columns holding PHI (or values derived from it)
    why: str = ""


_R = Retention
_NONE = TableRetention(_R.OPERATIONAL)

CATALOGUE: dict[str, TableRetention] = {
    "fhir_resources": TableRetention(_R.MEMBER_RECORD, ("body",), "the members' records"),
    "fhir_tokens": TableRetention(
        _R.MEMBER_RECORD, ("value", "value_key"), "their search values and blind keys"
    ),
    "consents": TableRetention(_R.MEMBER_RECORD, ("resource",), "the member's Consent"),
    "identity_member_records": TableRetention(
        _R.MEMBER_RECORD, ("record",), "standardised demographics matching reads"
    ),
    "identity_blocking_keys": TableRetention(
        _R.MEMBER_RECORD, ("key",), "keyed hashes of demographics"
    ),
    "identity_links": TableRetention(
        _R.MEMBER_RECORD, ("value",), "identifiers other plans know the member by"
    ),
    "provider_attributions": TableRetention(
        _R.MEMBER_RECORD, (), "which providers the member is attributed to (member ids)"
    ),
    "opt_out_choices": TableRetention(
        _R.MEMBER_RECORD, (), "the member's Provider Access choices (member ids)"
    ),
    "source_members": TableRetention(
        _R.MEMBER_RECORD, ("source_key",), "the member's id at a live source"
    ),
    "exchange_payloads": TableRetention(_R.RAW_PAYLOAD, ("body",), "the Bundle received"),
    "source_files": TableRetention(_R.RAW_PAYLOAD, ("body",), "a backend file as received"),
    "source_file_chunks": TableRetention(
        _R.RAW_PAYLOAD, ("body",), "a backend file as received, in pieces"
    ),
    "quarantined_resources": TableRetention(
        _R.MEMBER_RECORD, ("body",), "what failed a profile, held until a person acts"
    ),
    "exchanges": TableRetention(
        _R.REQUEST, ("request", "member_identifier"), "the submitted demographics"
    ),
    "identity_reviews": TableRetention(
        _R.REQUEST, ("request_record",), "the request a reviewer compares"
    ),
    "onboarding_members": TableRetention(
        _R.REQUEST, ("bundle",), "each onboarded member's request"
    ),
    "idempotent_responses": TableRetention(_R.EXPIRING, ("body",), "answers replayed"),
    "disclosure_snapshots": TableRetention(_R.EXPIRING, ("query",), "$everything pages"),
    "disclosure_snapshot_refs": TableRetention(_R.EXPIRING),
    "bulk_jobs": TableRetention(_R.EXPIRING, ("request_body",), "a bulk request"),
    "bulk_match_results": TableRetention(_R.EXPIRING),  # an outcome code and our member id
    "bulk_export_members": TableRetention(_R.EXPIRING),
    "bulk_output_lines": TableRetention(_R.EXPIRING, ("body",), "bulk files' lines"),
    "member_groups": TableRetention(_R.EXPIRING, ("body",), "bulk match Groups"),
    "audit_events": TableRetention(_R.AUDIT),
    "audit_tree_nodes": TableRetention(_R.AUDIT),
    "audit_head": TableRetention(_R.AUDIT),
    "audit_checkpoints": TableRetention(_R.AUDIT),
    "identity_decisions": TableRetention(_R.AUDIT, (), "levels, weights and member ids"),
    "exchange_transitions": TableRetention(_R.AUDIT),
    "obligation_clocks": TableRetention(_R.AUDIT, (), "ids and times of each deadline"),
    "pull_schedules": TableRetention(
        _R.REQUEST, ("request",), "the request each pull sends, sealed; cut when it stops"
    ),
    "legal_holds": _NONE,
    "data_keys": _NONE,  # data keys, wrapped by a key kept outside the database
    "sealed_columns": _NONE,  # which sealed columns a pass has sealed once (ADR 0044)
    "identity_attempts": _NONE,  # keyed hashes, for guessing limits, kept a day
    "audit_refusal_windows": _NONE,  # refused calls counted by client and reason
    "identity_models": _NONE,
    "dead_letters": _NONE,
    "partners": _NONE,
    "partner_proposals": _NONE,  # organizations as a directory describes them (ADR 0062)
    "partner_breakers": _NONE,
    "partner_rates": _NONE,
    "api_clients": _NONE,
    "client_assertions": _NONE,
    "rate_limits": _NONE,
    "webhook_subscriptions": _NONE,
    "webhook_deliveries": _NONE,  # exchange ids and states
    "onboardings": _NONE,
    "onboarding_chunks": _NONE,
    "source_file_resources": _NONE,
    "operators": _NONE,
    "operator_sessions": _NONE,
    "unmask_grants": _NONE,  # who saw identifiers unmasked, why and until when
    "worker_heartbeats": _NONE,  # worker ids and when each last beat (ADR 0049)
    "destination_deliveries": _NONE,  # exchange ids, states and codes (ADR 0053)
    "destination_writes": _NONE,  # our refs and content hashes, per destination
}


def undeclared(tables: Iterable[str]) -> list[str]:
    """The tables of a schema that declare no retention (sorted)."""
    return sorted(set(tables) - CATALOGUE.keys())


def phi_tables() -> dict[str, TableRetention]:
    """The declared tables that hold PHI."""
    return {name: entry for name, entry in CATALOGUE.items() if entry.phi}
