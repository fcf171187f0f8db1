"""All configuration in one place: ``PAYERBRIDGE_*`` environment variables and a TOML file.

Precedence, highest first: explicit arguments (CLI flags), environment variables, the
config file (``PAYERBRIDGE_CONFIG_FILE``, else ``<data dir>/payerbridge.toml`` when it
exists), defaults. Read once in ``bootstrap`` and passed down; the core never imports it.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from payerbridge.net.addresses import egress_networks
from payerbridge.npi import is_valid_npi
from payerbridge.principals import check_console_roles, check_principals

__all__ = ["GUESSING_RATES", "OperationRate", "Settings", "load_settings", "redacted"]

_config_file: ContextVar[Path | None] = ContextVar("payerbridge_config_file", default=None)


class OperationRate(BaseModel):
    """One operation's rate limit per client: ``per_minute`` requests (0: no limit) after
    ``burst`` at once."""

    model_config = ConfigDict(extra="forbid")

    per_minute: float = Field(ge=0)
    burst: int = Field(ge=1)


# The operations whose answers let a caller guess who is a member, limited to what a
# payer's own systems need (a new member's match, a few bulk jobs), not to what the
# server can take (ADR 0025). An entry of rate_limits for the same operation replaces it.
GUESSING_RATES = {
    "POST /fhir/Patient/$member-match": OperationRate(per_minute=120, burst=30),
    "POST /fhir/Group/$bulk-member-match": OperationRate(per_minute=10, burst=5),
}

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Settings(BaseSettings):
    """Effective configuration of one payerbridge instance."""

    model_config = SettingsConfigDict(env_prefix="PAYERBRIDGE_", extra="forbid")

    data_dir: Path = Field(default=Path("./var"), description="Embedded database and files.")
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of PostgreSQL for production; SQLite in data_dir when unset.",
    )
    database_max_connections: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="PostgreSQL: the most connections one process opens for its own tables, "
        "and as many again for its workflow records (DBOS). Every process on one server "
        "counts twice this against the server's max_connections.",
    )
    org_name: str = Field(default="PayerBridge Demo Health Plan", min_length=1)
    org_npi: str = Field(default="1234567893", description="NPI by which partners name us.")
    public_base_url: str | None = Field(
        default=None,
        description="External base URL (no trailing /fhir): the issuer of our tokens and the "
        "system of our member identifiers. Required in prod; in dev and test "
        "http://<host>:<port>.",
    )
    tls_certfile: Path | None = Field(
        default=None, description="PEM certificate (chain) of the server: serve over HTTPS."
    )
    tls_keyfile: Path | None = Field(default=None, description="Its private key (PEM).")
    tls_client_ca: Path | None = Field(
        default=None,
        description="PEM bundle of the certificate authorities whose client certificates "
        "are accepted (mutual TLS, optional for the client); a token asked over such a "
        "connection is bound to the certificate (RFC 8705).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_request_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    partner_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Longest single partner call (shortened by budgets)."
    )
    # Outbound exchanges: time budgets, backoff and the breaker (exchange/calls/retry.py, ADR 0047).
    retry_max_attempts: int | None = Field(
        default=None, ge=1, description="Calls a step may make; unset: the deadline alone."
    )
    retry_base_delay_seconds: float = Field(default=0.5, ge=0)
    retry_max_delay_seconds: float = Field(default=30.0, ge=0)
    retry_longest_delay_seconds: float = Field(
        default=3600.0, ge=0, description="Past max_delay, a tenth of the time waited, to this."
    )
    step_budget_seconds: float | None = Field(default=None, gt=0)
    exchange_budget_seconds: float | None = Field(
        default=None, gt=0, description="From submission; unset: the rule's clocks (ADR 0037)."
    )
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="The probe interval of an open breaker."
    )
    partner_check_seconds: float = Field(
        default=300.0,
        ge=0,
        description="A partner nothing was sent to for this long is checked (its "
        "CapabilityStatement and token endpoint) by the upkeep sweep, so its health is "
        "known while it is idle; 0: never.",
    )
    partner_review_poll_seconds: float = Field(
        default=300.0,
        gt=0,
        description="When the old payer puts a $member-match under review: how soon we ask "
        "again (then after as long as we have waited, at most an hour).",
    )
    partner_review_wait_hours: float = Field(
        default=72.0, gt=0, description="How long an exchange waits for the old payer's reviewer."
    )
    # Workers: the exchange queue, partitioned by partner.
    partner_concurrency: int = Field(
        default=16, ge=1, description="Exchanges in flight per partner, across all workers."
    )
    partner_rate_per_second: float | None = Field(
        default=None, gt=0, description="Exchange starts per second per partner; unset: none."
    )
    worker_concurrency: int = Field(default=64, ge=1, description="Exchanges per worker.")
    queue_polling_seconds: float = Field(
        default=0.25,
        gt=0,
        description="How often a worker looks for queued exchanges (a query per partner "
        "with exchanges waiting: at 0.1 s and eight busy partners, a fifth of a core).",
    )
    bulk_queue_polling_seconds: float = Field(
        default=1.0, gt=0, description="The same for bulk jobs and onboardings (ADR 0050)."
    )
    idempotency_retention_hours: float = Field(
        default=24.0,
        gt=0,
        description="How long an answer is kept for retries under the same Idempotency-Key "
        "(old-payer side); answers may hold member data, so they are purged after this.",
    )
    # The data lifecycle (ADR 0038), applied by the upkeep sweep.
    raw_payload_grace_hours: float = Field(
        default=168.0,
        gt=0,
        description="How long a partner's raw answer (the Bundle received) is kept after its "
        "exchange stored the data or failed; the normalized resources stay.",
    )
    request_retention_hours: float = Field(
        default=720.0,
        gt=0,
        description="How long an ended exchange keeps its submitted demographics, and a "
        "decided review case its request, before they are cut to what the audit needs.",
    )
    # Who may release a hold and break the glass (ADR 0046).
    hold_counsel: str = Field(
        default="",
        description="Counsel, who may release any legal hold besides its placer: principals, "
        "space-delimited (console:<account>, api:<client id>, cli:<os user>).",
    )
    break_glass_roles: str = Field(
        default="operator", description="The console roles that may break the glass."
    )
    break_glass_approval: bool = Field(
        default=False, description="A break-glass grant waits for a second operator's approval."
    )
    # Webhooks on exchange state changes, each delivery a durable workflow on the workers.
    webhook_max_attempts: int = Field(default=8, ge=1, description="Attempts per delivery.")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_received_link_seconds: int = Field(default=86400, ge=0)  # received link; 0: none
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Deprecated and ignored: addresses outside the public internet are "
        "allowed by egress_allowed_networks (a warning is logged when this is set).",
    )
    # Where outbound calls may go (partners, jwks_url, webhooks), how much is read (0027).
    egress_allowed_networks: list[str] | None = Field(
        default=None,
        description="Networks (CIDR, as a JSON list) that partners, jwks_url and webhooks "
        "may be reached in although they are not public (and over plain http). Unset: "
        'loopback (["127.0.0.0/8", "::1/128"]) in dev and test, none in prod; in prod '
        "only private networks may be listed (a partner over a private link), never "
        "loopback, link-local, multicast or unspecified ones.",
    )
    partner_max_answer_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Most bytes read of one partner answer ($member-match, a $everything "
        "or search page, a Bulk Data status): beyond, the call fails and is not retried.",
    )
    partner_max_record_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="Most read of a member's record, all pages."
    )
    partner_max_file_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="Most bytes read of one Bulk Data file."
    )
    partner_max_document_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Most bytes read of a discovery document (metadata, SMART "
        "configuration, UDAP metadata), a token answer or a client's JWK Set.",
    )
    worker_id: str = Field(
        default="local",
        min_length=1,
        max_length=100,
        description="Stable id of this worker; a restarted worker recovers its own workflows.",
    )
    worker_heartbeat_seconds: int = Field(
        default=10,
        ge=1,
        le=60,
        description="How often each workflow process beats (a divisor of 60; ADR 0049).",
    )
    worker_stale_seconds: float = Field(
        default=45.0, gt=0, description="A worker silent this long (two beats+) is taken over."
    )
    consent_time_zone: str = Field(
        default="UTC",
        description="IANA zone in which date-only consent periods are read (whole days, "
        "both ends inclusive), e.g. America/Chicago.",
    )
    identity_secret: SecretStr | None = Field(
        default=None,
        description="Key of the identity index's blocking and request hashes (at least 32 "
        "characters). Unset: a random key kept in the data dir (identity.key). Every process "
        "sharing a database must use the same key; changing it needs `identity reindex`.",
    )
    data_key_file: Path | None = Field(
        default=None,
        description="The key-encryption key that wraps the data keys sealing the PHI "
        "columns outside the FHIR store (identity records, review requests, exchange "
        "requests; ADR 0039), kept outside the database: 64 hex digits, mode 0600. Unset: "
        "data.key in the data dir, made on the database's first start; a file named here "
        "must exist. Every process on one database needs the same file; without it nothing "
        "sealed can be read, and the server does not start.",
    )
    everything_page_size: int = Field(
        default=1000,
        ge=1,
        le=5000,
        description="Resources per $everything page when the caller gives no _count (and "
        "the most it may ask for): each page is read and sent on its own.",
    )
    everything_snapshot_seconds: int = Field(
        default=3600,
        ge=60,
        description="How long the next links of a $everything answer stay valid: the pages "
        "are those decided at the first page, kept for this long.",
    )
    bulk_client_concurrency: int = Field(
        default=2, ge=1, description="Bulk jobs of one client running at once, on all workers."
    )
    bulk_worker_concurrency: int = Field(
        default=4, ge=1, description="Bulk jobs one worker runs at once."
    )
    bulk_chunk_members: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Members a bulk job decides per unit of work: what a resumed job may "
        "decide again, and what a cancellation waits for at most.",
    )
    bulk_output_hours: int = Field(
        default=24, ge=1, description="How long a finished bulk job's files are kept (410 after)."
    )
    bulk_group_days: int = Field(
        default=30,
        ge=1,
        description="How long the Groups of $bulk-member-match stay readable and exportable "
        "by the client that asked (they contain the demographics it submitted).",
    )
    onboarding_chunk_members: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Members per $bulk-member-match request of an onboarding (new payer): "
        "each chunk is matched, exported and imported on its own.",
    )
    onboarding_partner_concurrency: int = Field(
        default=1, ge=1, description="Onboardings running at once against one old payer."
    )
    payer_to_payer_years: int = Field(
        default=5,
        ge=5,
        le=100,
        description="Years of service dates a payer-to-payer $everything or search gives "
        "(CMS-0057-F: five; PDex 2.2 lets a responder give more). Prior authorizations "
        "go while active or pending, or for a year after their last change.",
    )
    sources_file: Path | None = Field(
        default=None,
        description="The sources file (TOML): the plan's backends, each with its mapping "
        "version (ADR 0031). Default: sources.toml in the data dir, else the built-in store.",
    )
    ingest_parallel_bytes: int = Field(default=2_000_000, ge=0, description="A source file "
        "this large is read on a second process while it is mapped (0: never).")  # fmt: skip
    sensitive_code_sets: Path | None = Field(
        default=None,
        description="A JSON file of sensitive codes and categories added to the shipped "
        "ones (the form of payerbridge/consent/data/sensitive-code-sets.json, with its own "
        "version): what a regular consent withholds. It only adds; the version and digest "
        "in force are recorded on every disclosure decision (`payerbridge code-sets`).",
    )
    scope_file: Path | None = Field(
        default=None,
        description="A JSON file of the payer-to-payer data scope (the form of "
        "payerbridge/disclosure/data/payer-to-payer-scope.json, with its own version): the "
        "resource types, states and elements the rule lets leave, each citing its source "
        "(ADR 0042). Unset: the shipped file. Recorded on every disclosure decision.",
    )
    obligations_file: Path | None = Field(
        default=None,
        description="A JSON file of the rule's clocks (the form of "
        "payerbridge/compliance/data/obligations.json, with its own version): each "
        "obligation's limit, warning and cited source (ADR 0037). Unset: the shipped file.",
    )
    business_calendar: Path | None = Field(
        default=None,
        description="A JSON file of the plan's business days: its time zone, days off and "
        "holidays (the form of payerbridge/compliance/data/us-federal-holidays.json). Unset: "
        "US federal holidays in America/New_York.",
    )
    simulated_clock_file: Path | None = Field(
        default=None,
        description="Rehearsals and tests only, never production: the platform's time is "
        "read from this file (a FHIR instant, the time as of the file's last change, "
        "running on from then), so the rule's clocks can be rehearsed over simulated weeks. "
        "Every process of a rehearsal (both payers) reads the same file.",
    )
    member_match_return_member_id: bool = Field(
        default=True, description="$member-match also returns MemberId (our Patient reference)."
    )
    hrex_version: Literal["1.0.0", "1.1.0", "1.2.0"] | None = Field(
        default=None,
        description="The HRex version this server declares (CapabilityStatement) and answers "
        "$member-match in when the caller names none; unset: no version declared, and an "
        "answer every version accepts. A caller naming its version is answered in it.",
    )
    pdex_version: Literal["2.0.0", "2.1.0", "2.2.0"] | None = Field(
        default=None, description="The PDex version this server declares; unset: none named."
    )
    wellknown_refresh_hours: float = Field(
        default=24.0,
        ge=0,
        description="A partner's davinci-configuration is read again by the upkeep (its "
        "endpoints from it replaced, audited) once its last reading is this old; 0: never.",
    )
    wellknown_on_coverage: bool = Field(
        default=False,
        description="Our $member-match's CoverageToLink carries our .well-known/davinci-"
        "configuration location (HRex CoverageDavinciWellknownLocation; ADR 0061).",
    )
    offer_everything: bool = Field(
        default=True,
        description="Offer Patient/$everything (declared and answered); false: the member's "
        "record is read by searches (patient=) only, as some payers serve it.",
    )
    member_match_strict: bool = Field(
        default=False,
        description="Reject $member-match requests whose CoverageToMatch has neither a member "
        "id nor a subscriber id (HRex 1.1 us-core-15) instead of matching on demographics.",
    )
    member_match_max_cards: int = Field(
        default=5,
        ge=1,
        description="Brute-force guard (HRex mm-7): distinct card data one client may try "
        "with the same demographics within the window.",
    )
    member_match_window_seconds: float = Field(default=3600.0, gt=0)
    audit_refusal_window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Refused $member-match and $bulk-member-match calls are audited as one "
        "event per client, reason and window of this length (ADR 0045).",
    )
    # The authorization server (SMART Backend Services; ADR 0009).
    key_dir: Path | None = Field(
        default=None,
        description="Directory of this server's private keys (access-token signing keys, "
        "the key of our assertions to partners), kept outside the database (0600). "
        "Unset: keys/ in the data dir, created on first start.",
    )
    access_token_seconds: int = Field(
        default=300, ge=30, le=3600, description="Lifetime of the access tokens we issue."
    )
    udap_trust_anchors: list[Path] = Field(
        default_factory=list,
        description="PEM files of the certificate authorities whose clients may register "
        "themselves (UDAP B2B), as a JSON list; none: UDAP registration is closed.",
    )
    udap_revocation_lists: list[Path] = Field(
        default_factory=list,
        description="Their certificate revocation lists (PEM or DER files), as a JSON list.",
    )
    udap_certificate: Path | None = Field(
        default=None,
        description="PEM chain of this server's certificate from the UDAP trust community, "
        "leaf first: it signs the UDAP metadata (signed_metadata).",
    )
    udap_certificate_key: Path | None = Field(
        default=None, description="Its private key (PEM, unencrypted, 0600)."
    )
    udap_client_scopes: str = Field(
        default="system/*.rs http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match",
        description="The scopes a UDAP client may register for by itself (space-delimited).",
    )
    rate_limit_per_second: float = Field(
        default=100.0,
        ge=0,
        description="Requests per second one client may make to one operation, counted "
        "across every process on the database (0: no limit); beyond it 429 with "
        "Retry-After. Operations named in rate_limits have their own.",
    )
    rate_limit_burst: int = Field(
        default=200, ge=1, description="Requests a client may make at once before the rate."
    )
    rate_limits: dict[str, OperationRate] = Field(
        default_factory=dict,
        description="Rates of their own for operations, by method and route template "
        '(\'{"POST /fhir/Patient/$member-match": {"per_minute": 60, "burst": 10}}\'), '
        "counted per client across every process; per_minute 0: no limit. Added to the "
        "defaults for the operations that guessing uses (GUESSING_RATES), which an entry "
        "of the same operation replaces.",
    )
    clock_skew_seconds: int = Field(
        default=60, ge=0, le=300, description="Clock difference allowed on client assertions."
    )
    # The audit chain's signed checkpoints (ADR 0007).
    audit_signing_key: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs audit checkpoints, kept outside the "
        "database. Unset: audit-signing.key in the data dir, created on first start (0600).",
    )
    audit_checkpoint_file: Path | None = Field(
        default=None,
        description="File the signed checkpoints are appended to (JSON lines), read by "
        "`payerbridge audit verify`. Unset: audit-checkpoints.jsonl in the data dir.",
    )
    audit_checkpoint_url: str | None = Field(
        default=None,
        description="Also POST each batch of signed checkpoints (a JSON array) to this URL.",
    )
    audit_witness: Path | None = Field(
        default=None,
        description="A witness of the signed checkpoints outside the data dir and the "
        "database (an append-only file, or a directory that gets audit-checkpoints.jsonl): "
        "each is appended there too, and `payerbridge audit verify` checks the chain and "
        "the checkpoint file against it. Required in prod unless audit_checkpoint_url is set.",
    )
    audit_checkpoint_every_events: int = Field(
        default=1000, ge=1, description="A checkpoint at every multiple of this many events."
    )
    audit_checkpoint_every_seconds: float = Field(
        default=60.0,
        gt=0,
        description="And at the head when the last is older than this: events are signed at "
        "most this long plus the 15 s schedule tick after they are written.",
    )
    upkeep_sweep_seconds: int = Field(
        default=30,
        ge=1,
        le=60,
        description="How often the upkeep sweep runs (a divisor of 60): it enqueues work "
        "whose process died before enqueueing it, restarts overdue webhook deliveries and "
        "purges what is past its retention.",
    )
    upkeep_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long work must have sat unenqueued (or a delivery overdue) before "
        "the sweep takes it up: the process that recorded it has had time to do it itself.",
    )
    runbook_url: str | None = Field(
        default=None,
        description="Where the runbook links of OperationOutcomes, OAuth errors, the CLI and "
        "the alert rules point, {code} standing for the reason code or the alert's page "
        "(an intranet wiki, say: https://wiki.plan.example/payerbridge/{code}). Unset: "
        "<runbook_base_url>/{code}.",
    )
    runbook_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+(/\S*)?$",
        description="Where the runbook pages are, each at <base>/<code> (an alert's at "
        "<base>/alert-<name>), for the alert rules (`payerbridge alerts rules`) and runbook "
        "links. Unset: <public_base_url>/runbooks; without one, the links name this server "
        "and the alert rules https://payerbridge.dev/runbooks.",
    )
    runbooks_dir: Path | None = Field(
        default=None,
        description="The runbook pages this server serves at /runbooks, one <code>.md each. "
        "Unset: docs/runbooks of the source tree it runs from.",
    )
    # The operator console (ADR 0035).
    console_idle_seconds: int = Field(
        default=1800,
        ge=1,
        description="A console session ends after this long without a request.",
    )
    console_session_seconds: int = Field(
        default=12 * 3600,
        ge=1,
        description="A console session ends this long after sign-in, however active.",
    )
    # Metrics (ADR 0032): /metrics behind the operator scope, and a listener of their own.
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve the Prometheus exposition on this port, without a token, "
        "for a scraper on a private network (`payerbridge worker --metrics-port` overrides it "
        "for a worker). Unset: only GET /metrics, with the operator scope.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="The interface the metrics listener binds."
    )
    metrics_multiprocess: bool = Field(
        default=False,
        description="The processes of this data dir on this host (serve, workers) write "
        "their counters under <data dir>/metrics and every exposition sums them all: scrape "
        "one of them. Off: each process is a scrape target of its own.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Tracing (ADR 0033, tracing/setup.py).
    tracing: Literal["off", "otlp", "log"] = Field(
        default="off",
        description="Record spans and send them: 'otlp' to an OpenTelemetry collector over "
        "OTLP/HTTP, 'log' as JSON log lines; 'off' records none (trace context is still "
        "propagated, see trace_propagation).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="The collector's OTLP/HTTP traces URL (http://collector:4318/v1/traces); "
        "unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else "
        "http://localhost:4318/v1/traces.",
    )
    trace_sample_ratio: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="The share of the traces we start that are recorded (1.0: every one; "
        "a recorded trace costs a $member-match about 14 % more CPU, ADR 0033); a caller's "
        "traceparent decides for the traces it started.",
    )
    trace_statements: bool = Field(
        default=False,
        description="While recording, also a span per SQL statement (its operation and "
        "table, never its values): for finding a slow query; each costs a span's recording "
        "and export, dozens per exchange.",
    )
    trace_propagation: bool = Field(
        default=True,
        description="Continue a caller's W3C traceparent (into the workflows it starts, on "
        "log lines and audit events) and send ours, or the caller's, to partners.",
    )
    environment: Literal["dev", "test", "prod"] = "dev"

    @field_validator("upkeep_sweep_seconds", "worker_heartbeat_seconds")
    @classmethod
    def _divides_a_minute(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("must divide 60 (it runs at fixed seconds of each minute)")
        return value

    @field_validator(
        "database_url",
        "public_base_url",
        "identity_secret",
        "data_key_file",
        "key_dir",
        "tls_certfile",
        "tls_keyfile",
        "tls_client_ca",
        "udap_certificate",
        "udap_certificate_key",
        "audit_signing_key",
        "audit_checkpoint_file",
        "audit_checkpoint_url",
        "audit_witness",
        "otlp_endpoint",
        "metrics_port",
        "runbook_url",
        "runbook_base_url",
        "runbooks_dir",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An exported-but-empty variable means "not configured", not "an empty URL".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(
                f"otlp_endpoint must be an http:// or https:// URL of the collector, got {value!r}"
            )
        return value

    @field_validator("rate_limits")
    @classmethod
    def _operations_are_routes(cls, value: dict[str, OperationRate]) -> dict[str, OperationRate]:
        for operation in value:
            method, _, path = operation.partition(" ")
            if method not in _METHODS or not path.startswith("/") or " " in path:
                raise ValueError(
                    f"rate_limits names an operation as its method and route template, as "
                    f"'POST /fhir/Patient/$member-match'; got {operation!r}"
                )
        return value

    @field_validator("hold_counsel")
    @classmethod
    def _counsel_are_principals(cls, value: str) -> str:
        return check_principals(value, setting="hold_counsel")

    @field_validator("break_glass_roles")
    @classmethod
    def _break_glass_roles_exist(cls, value: str) -> str:
        return check_console_roles(value, setting="break_glass_roles")

    @field_validator("runbook_url")
    @classmethod
    def _runbook_url_has_a_code(cls, value: str | None) -> str | None:
        if value is not None and (
            "{code}" not in value or not value.startswith(("https://", "http://"))
        ):
            raise ValueError(
                "runbook_url must be an http(s) address with {code} where the reason code "
                f"goes, as https://wiki.plan.example/payerbridge/{{code}}; got {value!r}"
            )
        return value

    @field_validator("identity_secret")
    @classmethod
    def _secret_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("identity_secret must be at least 32 characters (use a random key)")
        return value

    @field_validator("consent_time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"consent_time_zone must be an IANA time zone, got {value!r}") from exc
        return value

    @field_validator("org_npi")
    @classmethod
    def _npi_is_valid(cls, value: str) -> str:
        if not is_valid_npi(value):
            raise ValueError("org_npi must be a 10-digit NPI with a valid check digit")
        return value

    @model_validator(mode="after")
    def _stale_after_two_beats(self) -> Settings:
        if self.worker_stale_seconds < 2 * self.worker_heartbeat_seconds:
            raise ValueError("worker_stale_seconds must be at least twice the heartbeat")
        return self

    @model_validator(mode="after")
    def _tls_is_whole(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        if self.tls_client_ca is not None and self.tls_certfile is None:
            raise ValueError("tls_client_ca needs tls_certfile and tls_keyfile (HTTPS)")
        return self

    @model_validator(mode="after")
    def _prod_names_itself(self) -> Settings:
        # Our tokens' issuer and our member identifiers' system must not come from a
        # request's Host header: an attacker chooses that.
        if self.environment == "prod" and self.public_base_url is None:
            raise ValueError("public_base_url is required when environment is prod")
        return self

    @model_validator(mode="after")
    def _audit_is_witnessed(self) -> Settings:
        # Whoever holds the data dir must not hold the key that signs the audit trail,
        # nor the only copy of its checkpoints (ADR 0007).
        data_dir = self.data_dir.resolve()
        witness = self.audit_witness
        if witness is not None and witness.resolve().is_relative_to(data_dir):
            raise ValueError(
                "audit_witness (PAYERBRIDGE_AUDIT_WITNESS) must be outside data_dir: "
                "whoever holds the data dir could cut it"
            )
        if self.environment != "prod":
            return self
        key = self.audit_signing_key
        if key is None or key.resolve().is_relative_to(data_dir):
            raise ValueError(
                "audit_signing_key (PAYERBRIDGE_AUDIT_SIGNING_KEY) must name a key file "
                "outside data_dir when environment is prod: whoever holds the data dir "
                "could sign a cut audit trail"
            )
        if self.audit_witness is None and self.audit_checkpoint_url is None:
            raise ValueError(
                "audit_witness (PAYERBRIDGE_AUDIT_WITNESS) or audit_checkpoint_url "
                "(PAYERBRIDGE_AUDIT_CHECKPOINT_URL) is required when environment is prod: "
                "signed audit checkpoints must be kept outside the data dir"
            )
        return self

    @model_validator(mode="after")
    def _egress_networks(self) -> Settings:
        # Explicit in the effective config (`payerbridge config show`).
        self.egress_allowed_networks = egress_networks(
            self.egress_allowed_networks, is_prod=self.environment == "prod"
        )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with a driver SQLAlchemy knows (psycopg 3 for PostgreSQL)."""
        if self.database_url is None:
            return f"sqlite:///{(self.data_dir / 'payerbridge.db').resolve()}"
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def base_url(self) -> str:
        """Our external base URL (see ``public_base_url``)."""
        if self.public_base_url is not None:
            return self.public_base_url.rstrip("/")
        scheme = "https" if self.tls_certfile is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def runbook_template(self) -> str:
        """Where runbook links point, ``{code}`` for the code (see ``runbook_url``)."""
        base = (self.runbook_base_url or f"{self.base_url}/runbooks").rstrip("/")
        return self.runbook_url or f"{base}/{{code}}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")


def load_settings(
    *, data_dir: Path | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Build the effective settings; ``data_dir`` and ``overrides`` beat env and file."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    env_dir = os.environ.get("PAYERBRIDGE_DATA_DIR")
    effective_dir = Path(data_dir or env_dir or "./var")
    if config_file is None:
        env_file = os.environ.get("PAYERBRIDGE_CONFIG_FILE")
        candidate = Path(env_file) if env_file else effective_dir / "payerbridge.toml"
        config_file = candidate if (env_file or candidate.exists()) else None
    token = _config_file.set(config_file)
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data, secrets shown as ``**********``."""
    data = settings.model_dump(mode="json")
    for secret in ("database_url", "identity_secret"):
        if getattr(settings, secret) is not None:
            data[secret] = "**********"
    return data
