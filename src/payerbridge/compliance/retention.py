"""How long each table keeps what it holds: a retention class per table, and the
columns of it that hold PHI (pure data; ADR 0038).

Every table of the schema is declared here, the tables without PHI too: the purge and
the erasure act on what is declared, so a table that is not declared is refused at
start-up (``undeclared``) rather than left to keep member data nobody tracks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CATALOGUE", "Retention", "TableRetention", "phi_tables", "undeclared"]


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
    "source_members": TableRetention(
        _R.MEMBER_RECORD, ("source_key",), "the member's id at a live source"
    ),
    "exchange_payloads": TableRetention(_R.RAW_PAYLOAD, ("body",), "the Bundle received"),
    "source_files": TableRetention(_R.RAW_PAYLOAD, ("body",), "a backend file as received"),
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
}


def undeclared(tables: Iterable[str]) -> list[str]:
    """The tables of a schema that declare no retention (sorted)."""
    return sorted(set(tables) - CATALOGUE.keys())


def phi_tables() -> dict[str, TableRetention]:
    """The declared tables that hold PHI."""
    return {name: entry for name, entry in CATALOGUE.items() if entry.phi}
