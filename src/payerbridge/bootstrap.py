"""The one place that picks concrete adapters and wires them into the use cases."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine

from payerbridge import __version__
from payerbridge.audit.checkpoints import Checkpoint, CheckpointPolicy
from payerbridge.audit.ports import AuditChain, AuditLog, AuditReader
from payerbridge.audit.service import verify_audit, write_checkpoints
from payerbridge.audit.verification import ChainReport
from payerbridge.backends.ingestion import hold_in
from payerbridge.backends.live import LiveSources
from payerbridge.backends.quarantine import Quarantine
from payerbridge.backends.service import SourceIngestion
from payerbridge.backends.sources import Sources, load_sources, sources_path
from payerbridge.bulk.member_match import BulkPorts, BulkRules
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.config import Settings
from payerbridge.consent.model import Requester
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.disclosure.ports import DisclosureSnapshots, MemberStore
from payerbridge.disclosure.reads import DisclosureContext, member_permits
from payerbridge.errors import InvalidInput, Issue
from payerbridge.exchange.ports import (
    BreakerBoard,
    ExchangeLedger,
    ExchangePorts,
    PartnerClient,
    Transactions,
)
from payerbridge.exchange.search import ExchangeSearch
from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.idempotency import IdempotencyStore
from payerbridge.identity.decision import BULK
from payerbridge.identity.guard import AttemptLimit
from payerbridge.identity.ports import IdentityStore
from payerbridge.logging import use_trace_ids
from payerbridge.metrics import PlatformMetrics, observe_events
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.transport import GuardedTransport, carry_trace_context
from payerbridge.onboarding.ports import OnboardingPorts
from payerbridge.oversight.ports import Oversight
from payerbridge.partners.answers import ResponseCaps
from payerbridge.partners.auth import OurUdapClient
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.partners.discovery import HttpxPartnerDiscovery
from payerbridge.partners.key_sets import HttpxKeySetSource
from payerbridge.policies import (
    compliance_obligations,
    egress_policy,
    rate_policy,
    response_caps,
    retry_policy,
    segmentation_policy,
    session_policy,
)
from payerbridge.routing.model import Organization
from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry
from payerbridge.security.certificates import TrustAnchors
from payerbridge.security.limits import RateLimiter
from payerbridge.security.model import RegisteredClient
from payerbridge.security.operator_accounts import LOGIN_RATES, OperatorPorts
from payerbridge.security.ports import ClientDirectory
from payerbridge.security.service import TokenPolicy, TokenService, forget_spent_assertions
from payerbridge.security.tokens import TokenVerifier, public_jwk
from payerbridge.security.udap import ServerIdentity
from payerbridge.sources.adapters import live_adapters
from payerbridge.store.audit import SqlAuditChain, SqlAuditTrail
from payerbridge.store.audit_reads import SqlAuditReader
from payerbridge.store.breakers import SqlBreakerStore
from payerbridge.store.bulk import SqlBulkJobs
from payerbridge.store.checkpoints import (
    CheckpointFile,
    CheckpointSinks,
    CheckpointUrl,
    audit_checkpoint_path,
    audit_signing_key_path,
    audit_witness_path,
    load_or_create_signing_key,
    load_public_key,
    read_checkpoints,
)
from payerbridge.store.clients import SqlAssertionLedger, SqlClientDirectory
from payerbridge.store.consents import SqlConsentStore
from payerbridge.store.disclosures import SqlDisclosureSnapshots
from payerbridge.store.engines import (
    WalCheckpointer,
    create_db_engine,
    create_reader,
    create_workflow_engine,
    migrate,
)
from payerbridge.store.exchange_search import SqlExchangeSearch
from payerbridge.store.exchanges import SqlExchangeStore
from payerbridge.store.idempotency import SqlIdempotencyStore
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.importer import FileReport, import_files, refresh_statistics
from payerbridge.store.key_files import identity_secret
from payerbridge.store.members import SqlMemberStore
from payerbridge.store.onboardings import SqlOnboardingStore
from payerbridge.store.operators import SqlOperatorAccounts
from payerbridge.store.oversight import SqlOversight
from payerbridge.store.partners import SqlPartnerDirectory
from payerbridge.store.quarantine import SqlQuarantine
from payerbridge.store.rate_limits import SqlAllowances
from payerbridge.store.readings import SqlReadingsSource
from payerbridge.store.received import SqlReceivedStore
from payerbridge.store.source_files import (
    SqlSourceFiles,
    SqlSourceMembers,
    SqlSourceWriter,
    provenance_by,
)
from payerbridge.store.spans import trace_statements
from payerbridge.store.token_keys import (
    TokenKeyFiles,
    key_dir,
    load_client_key,
    rotate_access_token_keys,
)
from payerbridge.store.trust_anchors import load_server_identity, load_trust_anchors
from payerbridge.store.unit_of_work import SqlTransactions
from payerbridge.store.webhooks import SqlWebhookStore
from payerbridge.tracing import current_ids, start_tracing, stop_tracing
from payerbridge.transactions import UnitAuditLog, UnitOfWork
from payerbridge.types import MemberId
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.model import WebhookPolicy
from payerbridge.webhooks.ports import WebhookStore

if TYPE_CHECKING:
    from payerbridge.workflows.maintenance import Upkeep

__all__ = [
    "Platform",
    "audit_checkpointer",
    "verify_audit_chain",
    "build_platform",
    "identity_secret",
    "rotate_access_token_keys",
    "launch_workflows",
    "new_id",
    "shutdown_workflows",
    "utcnow",
]


logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Adapters:
    """The concrete adapters the platform's own plumbing needs (indexing imported members,
    relaying committed webhook deliveries, closing); everything else sees the ports."""

    identity: SqlIdentityStore
    client: HttpxPartnerClient
    transactions: SqlTransactions
    key_sets: HttpxKeySetSource
    discovery: HttpxPartnerDiscovery


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    reader: Engine  # the engine for reads: ``engine`` itself on PostgreSQL
    members: MemberStore
    segmentation: SegmentationPolicy  # what a regular consent withholds, by which code sets
    obligations: ObligationSet  # the rule's clocks on the plan's calendar (ADR 0037)
    snapshots: DisclosureSnapshots  # paged $everything decisions
    partners: PartnerRegistry
    exchanges: ExchangeLedger
    exchange_search: ExchangeSearch  # GET /exchanges and the console's search
    breakers: BreakerBoard
    transactions: Transactions
    audit: AuditLog
    audit_chain: AuditChain[UnitOfWork]
    audit_reader: AuditReader  # timelines, AuditEvent, proofs (issue 53)
    idempotency: IdempotencyStore
    consents: ConsentStore
    clients: ClientDirectory
    webhook_targets: WebhookTargets  # where a webhook may be posted
    tokens: TokenService  # the token endpoint
    verifier: TokenVerifier  # checks the bearer token of every request
    limiter: RateLimiter  # requests per client and operation
    discovery: PartnerDiscovery  # reads a re-pointed partner's discovery documents
    udap_identity: ServerIdentity | None  # signs our UDAP metadata, when configured
    identity: IdentityStore
    webhooks: WebhookStore
    client: PartnerClient
    exchange_ports: ExchangePorts
    bulk: BulkPorts  # $bulk-member-match jobs and their Groups
    onboarding: OnboardingPorts  # plan-year onboardings (new payer)
    sources: SourceIngestion  # the plan's backends: replicated files mapped and kept
    live: LiveSources  # the plan's backends asked at request time
    profiles: ProfileChecker  # the shipped profiles every produced resource must meet
    quarantine: Quarantine  # what failed them, held for operators (ADR 0030)
    oversight: Oversight  # the console's dashboard, jobs and partners' recent exchanges
    operators: OperatorPorts  # the console's accounts and sessions (ADR 0035)
    metrics: PlatformMetrics  # the shared state as read now, and /metrics (ADR 0032)
    adapters: Adapters
    # The public half of the key we sign assertions to partners with, as a JWK Set.
    client_jwks: dict[str, Any] = field(default_factory=dict)
    checkpointer: WalCheckpointer | None = None  # SQLite only

    @property
    def us(self) -> Organization:
        return Organization(self.settings.org_name, self.settings.org_npi)

    def import_members(
        self, path: Path, *, progress: Callable[[int], None] | None = None
    ) -> FileReport:
        """Import a member data file and index its members for matching, atomically."""
        (report,) = self.import_member_files(
            [path], progress=None if progress is None else lambda _, size: progress(size)
        )
        return report

    def import_member_files(
        self, paths: Sequence[Path], *, progress: Callable[[Path, int], None] | None = None
    ) -> list[FileReport]:
        """Import member data files in one transaction, each all-or-nothing, and index the
        members they touched once, at the end (a plan's export: one file per type)."""
        with self.transactions.begin() as unit:
            reports = import_files(
                unit, paths, progress=progress, index_members=self._index_members
            )
        if any(report.accepted for report in reports):
            refresh_statistics(self.engine)
        return reports

    def check_jwks_url(self, url: str) -> str:
        """``url`` when a client's JWK Set may be read there; UnprocessableRequest naming
        ``jwks_url`` when it resolves to an address we never call (ADR 0027)."""
        return self.adapters.key_sets.check(url)

    def _index_members(self, unit: UnitOfWork, member_ids: Iterable[str]) -> None:
        """Index imported members for matching, in the import's unit of work."""
        self.adapters.identity.index_members(unit, member_ids, at=unit.now)

    def before_fork(self) -> None:
        """Let go of what must not cross a fork: pooled connections (each child opens its
        own) and the WAL checkpoint thread, which this process does without from now on
        (SQLite's own checkpoint is the backstop). A fork while that thread is inside
        SQLite copies SQLite's process-wide mutexes held, and the child's first
        connection then waits for them forever."""
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()
        self.reader.dispose()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.adapters.client.close()
        self.adapters.key_sets.close()
        self.adapters.discovery.close()
        self.adapters.identity.close()
        self.reader.dispose()
        self.engine.dispose()


def audit_checkpointer(
    platform: Platform, *, every_seconds: float | None = None
) -> Callable[[], list[Checkpoint]]:
    """The checkpoint use case wired to this deployment's key and sinks (the key is
    created in the data dir on first use unless configured); ``every_seconds`` overrides
    the configured interval (0: checkpoint the head now)."""
    settings = platform.settings
    key = load_or_create_signing_key(audit_signing_key_path(settings))
    sinks: list[CheckpointFile | CheckpointUrl] = [CheckpointFile(audit_checkpoint_path(settings))]
    witness = audit_witness_path(settings)
    if witness is not None:
        sinks.append(CheckpointFile(witness))
    if settings.audit_checkpoint_url:
        sinks.append(CheckpointUrl(settings.audit_checkpoint_url))
    sink = CheckpointSinks(sinks)
    policy = CheckpointPolicy(
        every_events=settings.audit_checkpoint_every_events,
        every_seconds=(
            settings.audit_checkpoint_every_seconds if every_seconds is None else every_seconds
        ),
    )

    def checkpoint() -> list[Checkpoint]:
        with platform.transactions.begin() as unit:
            return write_checkpoints(
                platform.audit_chain, sink, key, unit, now=unit.now, policy=policy
            )

    return checkpoint


def verify_audit_chain(
    platform: Platform,
    *,
    checkpoints: Path | None = None,
    public_key: Path | None = None,
    witness: Path | None = None,
    against: Sequence[str] = (),
) -> ChainReport:
    """The stored chain checked against the signed checkpoints in ``checkpoints`` (the
    configured file by default) and in ``witness`` (the configured witness by default)
    with ``public_key`` (the signing key's by default); each of ``against`` (a
    checkpoint's JSON or a file of them) is proven extended by the chain."""
    settings = platform.settings
    key = load_public_key(public_key or audit_signing_key_path(settings))
    signed = CheckpointFile(checkpoints or audit_checkpoint_path(settings)).read()
    witness = witness or audit_witness_path(settings)
    witnessed = CheckpointFile(witness).read() if witness is not None else []
    held = [checkpoint for reference in against for checkpoint in read_checkpoints(reference)]
    return verify_audit(platform.audit_chain, signed, key, witnessed=witnessed, against=held)


def token_service(
    settings: Settings,
    clients: ClientDirectory,
    transactions: SqlTransactions,
    key_sets: HttpxKeySetSource,
    member_consent: Callable[[MemberId, RegisteredClient, datetime], bool],
    trust: TrustAnchors,
) -> TokenService:
    return TokenService(
        clients=clients,
        assertions=SqlAssertionLedger(),
        key_sets=key_sets,
        transactions=transactions,
        keys=TokenKeyFiles(
            key_dir(settings),
            # A replaced key verifies as long as a token it signed can live.
            grace=timedelta(seconds=settings.access_token_seconds + settings.clock_skew_seconds),
        ),
        policy=TokenPolicy(
            issuer=settings.base_url,
            audience=f"{settings.base_url}/fhir",
            token_url=f"{settings.base_url}/auth/token",
            registration_url=f"{settings.base_url}/auth/register",
            access_token_lifetime=timedelta(seconds=settings.access_token_seconds),
            clock_skew=timedelta(seconds=settings.clock_skew_seconds),
            udap_scopes=frozenset(settings.udap_client_scopes.split()),
        ),
        trust=trust,
        member_consent=member_consent,
        new_id=new_id,
    )


def _our_udap_client(settings: Settings, identity: ServerIdentity | None) -> OurUdapClient | None:
    """Who we are to UDAP partners, when our community certificate is configured."""
    if identity is None:
        return None
    try:
        uri = identity.client_uri(f"{settings.base_url}/fhir")
    except ValueError as exc:
        raise InvalidInput(
            "PAYERBRIDGE_UDAP_CERTIFICATE names no URI: a UDAP certificate must carry one "
            "(subject alternative name), normally this server's FHIR base URL",
            issues=[Issue(str(exc), "udap_certificate")],
        ) from exc
    return OurUdapClient(identity, uri, Organization(settings.org_name, settings.org_npi))


def build_platform(
    settings: Settings,
    *,
    partner_transport: httpx.BaseTransport | None = None,
    run_migrations: bool = True,
) -> Platform:
    """Open the database (migrating it to the newest schema) and wire the adapters."""
    segmentation = segmentation_policy(settings)
    obligations = compliance_obligations(settings)
    sources = load_sources(sources_path(settings.sources_file, settings.data_dir))
    stores = _open_stores(settings, run_migrations=run_migrations)
    engine, reader, transactions = stores.engine, stores.reader, stores.transactions
    client_key = load_client_key(key_dir(settings))
    trust = load_trust_anchors(settings.udap_trust_anchors, settings.udap_revocation_lists)
    udap_identity = load_server_identity(settings.udap_certificate, settings.udap_certificate_key)
    udap_client = _our_udap_client(settings, udap_identity)
    egress = egress_policy(settings)
    caps = response_caps(settings)
    client = HttpxPartnerClient(
        policy=egress,
        caps=caps,
        timeout_seconds=settings.partner_timeout_seconds,
        user_agent=f"payerbridge/{__version__}",
        key=client_key,
        udap=udap_client,
        transport=partner_transport,
    )
    ports = _exchange_ports(settings, stores, client)
    identity = SqlIdentityStore(engine, identity_secret(settings), reader=reader)
    clients = SqlClientDirectory(engine)
    key_sets = HttpxKeySetSource(
        timeout_seconds=settings.partner_timeout_seconds, policy=egress, limit=caps.document
    )
    member_consent = _member_consent(settings, stores, segmentation)
    allowances = SqlAllowances(engine)
    tokens = token_service(settings, clients, transactions, key_sets, member_consent, trust)
    discovery = _discovery(settings, egress, caps, udap_client, trust, partner_transport)
    return Platform(
        settings=settings,
        engine=engine,
        reader=reader,
        members=stores.members,
        segmentation=segmentation,
        obligations=obligations,
        snapshots=SqlDisclosureSnapshots(engine, reader=reader),
        partners=stores.partners,
        exchanges=stores.exchanges,
        exchange_search=SqlExchangeSearch(reader),
        breakers=stores.breakers,
        transactions=transactions,
        audit=stores.audit,
        audit_chain=SqlAuditChain(engine, reader=reader),
        audit_reader=SqlAuditReader(reader),
        idempotency=SqlIdempotencyStore(),
        consents=stores.consents,
        clients=clients,
        webhook_targets=WebhookTargets(egress),
        tokens=tokens,
        verifier=TokenVerifier(
            tokens.keys, issuer=settings.base_url, audience=tokens.policy.audience
        ),
        limiter=RateLimiter(rate_policy(settings), allowances),
        discovery=discovery,
        udap_identity=udap_identity,
        identity=identity,
        webhooks=SqlWebhookStore(engine, reader=reader),
        client=client,
        exchange_ports=ports,
        bulk=_bulk_ports(settings, stores, identity, segmentation),
        onboarding=_onboarding_ports(settings, stores, client),
        **_sources(settings, sources, stores, identity),
        operators=_operator_ports(settings, stores, allowances),
        oversight=SqlOversight(engine, reader=reader),
        metrics=PlatformMetrics(SqlReadingsSource(reader), stores.partners.list, utcnow),
        adapters=Adapters(identity, client, transactions, key_sets, discovery),
        client_jwks={"keys": [public_jwk(client_key, "ES384")]},
        checkpointer=stores.checkpointer,
    )


def _discovery(
    settings: Settings,
    egress: AddressPolicy,
    caps: ResponseCaps,
    udap: OurUdapClient | None,
    trust: TrustAnchors,
    transport: httpx.BaseTransport | None,
) -> HttpxPartnerDiscovery:
    """Reads a partner's discovery documents (its CapabilityStatement, SMART or UDAP)."""
    return HttpxPartnerDiscovery(
        policy=egress,
        document_limit=caps.document,
        timeout_seconds=settings.partner_timeout_seconds,
        udap=udap,
        trust=trust,
        clock_skew=timedelta(seconds=settings.clock_skew_seconds),
        transport=transport,
    )


def _sources(
    settings: Settings, sources: Sources, stores: _Stores, identity: SqlIdentityStore
) -> dict[str, Any]:
    """The plan's backends: replicated sources' files mapped and kept, live sources asked
    at request time, both checked against their profiles (ADR 0031)."""
    us = Organization(settings.org_name, settings.org_npi)
    profiles = ProfileChecker.bundled()
    quarantine = SqlQuarantine(stores.engine, reader=stores.reader)
    hold = hold_in(quarantine)

    def index(unit: UnitOfWork, ids: Sequence[str]) -> None:
        identity.index_members(unit, ids, at=unit.now)

    files = SqlSourceFiles(
        stores.engine,
        us=us,
        check=profiles.check,
        hold=hold,
        index_members=index,
        new_id=new_id,
    )
    live = LiveSources(
        sources,
        live_adapters(sources, egress_policy(settings)),
        SqlSourceMembers(stores.reader),
        SqlSourceWriter(stores.members),
        check=profiles.check,
        hold=hold,
        provenance=provenance_by(us),
        index_members=index,
    )
    ingestion = SourceIngestion(
        sources, files, stores.transactions, lambda: refresh_statistics(stores.engine)
    )
    return {"sources": ingestion, "live": live, "profiles": profiles, "quarantine": quarantine}


@dataclass(frozen=True)
class _Stores:
    """The database and the stores more than one room is wired to."""

    engine: Engine
    reader: Engine  # the engine for reads: ``engine`` itself on PostgreSQL
    transactions: SqlTransactions
    members: SqlMemberStore
    partners: SqlPartnerDirectory
    exchanges: SqlExchangeStore
    breakers: SqlBreakerStore
    consents: SqlConsentStore
    audit: UnitAuditLog
    checkpointer: WalCheckpointer | None  # SQLite's write-ahead log, checkpointed


def _open_stores(settings: Settings, *, run_migrations: bool) -> _Stores:
    """The database, its schema migrated to the newest (unless told not to), and its stores."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(
        settings.sqlalchemy_url, max_connections=settings.database_max_connections
    )
    if run_migrations:
        migrate(engine)
    reader = create_reader(engine)
    checkpointer = None
    if settings.is_sqlite:
        checkpointer = WalCheckpointer()
        checkpointer.watch(settings.sqlalchemy_url)
    transactions = SqlTransactions(engine, clock=utcnow)
    transactions.observe_committed = observe_events  # the business metrics (ADR 0032)
    return _Stores(
        engine=engine,
        reader=reader,
        transactions=transactions,
        members=SqlMemberStore(engine, reader=reader),
        partners=SqlPartnerDirectory(engine, reader=reader),
        exchanges=SqlExchangeStore(engine, reader=reader),
        breakers=SqlBreakerStore(engine, reader=reader),
        consents=SqlConsentStore(engine, reader=reader),
        audit=UnitAuditLog(transactions, SqlAuditTrail(reader=reader)),
        checkpointer=checkpointer,
    )


def _exchange_ports(settings: Settings, stores: _Stores, client: PartnerClient) -> ExchangePorts:
    """The outbound exchange's ports (new payer)."""
    return ExchangePorts(
        transactions=stores.transactions,
        exchanges=stores.exchanges,
        partners=stores.partners,
        client=client,
        writer=stores.members,
        received=SqlReceivedStore(stores.engine, reader=stores.reader),
        breakers=stores.breakers,
        consents=stores.consents,
        audit=stores.audit,
        us=Organization(settings.org_name, settings.org_npi, f"{settings.base_url}/fhir"),
        clock=utcnow,
        new_id=new_id,
        random=random.random,
        retry_policy=retry_policy(settings),
        consent_zone=ZoneInfo(settings.consent_time_zone),
    )


def _operator_ports(
    settings: Settings, stores: _Stores, allowances: SqlAllowances
) -> OperatorPorts:
    """The console's accounts and sessions, sign-ins throttled (ADR 0035)."""
    accounts = SqlOperatorAccounts(stores.engine, reader=stores.reader)
    logins = RateLimiter(LOGIN_RATES, allowances)
    return OperatorPorts(accounts, stores.transactions, logins, session_policy(settings), utcnow)


def _member_consent(
    settings: Settings, stores: _Stores, segmentation: SegmentationPolicy
) -> Callable[[MemberId, RegisteredClient, datetime], bool]:
    """Whether a member's consent lets a client read her data now (the token service
    issues a member-scoped token only then)."""

    def member_consent(member: MemberId, client: RegisteredClient, now: datetime) -> bool:
        context = DisclosureContext(
            members=stores.members,
            consents=stores.consents,
            audit=stores.audit,
            requester=Requester(client_id=client.client_id, npi=client.npi),
            source_npi=settings.org_npi,
            at=now,
            request_id=None,
            segmentation=segmentation,
        )
        return member_permits(context, member)

    return member_consent


def _bulk_ports(
    settings: Settings, stores: _Stores, identity: IdentityStore, segmentation: SegmentationPolicy
) -> BulkPorts:
    """``$bulk-member-match`` jobs and the exports (old payer)."""
    rules = BulkRules(
        policy=BULK,
        us=Organization(settings.org_name, settings.org_npi, f"{settings.base_url}/fhir"),
        consent_zone=ZoneInfo(settings.consent_time_zone),
        output_lifetime=timedelta(hours=settings.bulk_output_hours),
        group_lifetime=timedelta(days=settings.bulk_group_days),
        chunk_members=settings.bulk_chunk_members,
        segmentation=segmentation,
        payer_to_payer_years=settings.payer_to_payer_years,
        attempts=AttemptLimit(
            settings.member_match_max_cards,
            timedelta(seconds=settings.member_match_window_seconds),
        ),
    )
    return BulkPorts(
        jobs=SqlBulkJobs(stores.engine, reader=stores.reader),
        transactions=stores.transactions,
        identity=identity,
        consents=stores.consents,
        members=stores.members,
        rules=rules,
        clock=utcnow,
        new_id=new_id,
    )


def _onboarding_ports(
    settings: Settings, stores: _Stores, client: HttpxPartnerClient
) -> OnboardingPorts:
    """Plan-year onboardings (new payer)."""
    return OnboardingPorts(
        transactions=stores.transactions,
        onboardings=SqlOnboardingStore(stores.engine, reader=stores.reader),
        partners=stores.partners,
        bulk=client,
        consents=stores.consents,
        writer=stores.members,
        us=Organization(settings.org_name, settings.org_npi, f"{settings.base_url}/fhir"),
        clock=utcnow,
        new_id=new_id,
        consent_zone=ZoneInfo(settings.consent_time_zone),
        chunk_members=settings.onboarding_chunk_members,
    )


def _dbos_system_url(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"sqlite:///{(settings.data_dir / 'workflows.db').resolve()}"
    return settings.sqlalchemy_url


def launch_workflows(platform: Platform, *, work: bool = True) -> None:
    """Start DBOS in this process. A worker (``work``) recovers its own unfinished
    workflows, runs queued exchanges and sweeps up exchanges that were recorded but
    never enqueued; an API-only process just enqueues."""
    from dbos import DBOS, DBOSConfig

    from payerbridge.workflows import bulk, exchange, maintenance, onboarding, webhooks

    settings = platform.settings
    start_tracing(settings, version=__version__)  # ADR 0033
    use_trace_ids(current_ids)
    if settings.tracing != "off" and settings.trace_statements:
        trace_statements(platform.engine, platform.reader)
    exchange.bind_ports(platform.exchange_ports)
    bulk.bind(platform.bulk)
    onboarding.bind(platform.onboarding)
    webhooks.bind(
        webhooks.WebhookDelivery(
            platform.webhooks,
            platform.transactions,
            httpx.Client(
                follow_redirects=False,
                transport=GuardedTransport(platform.webhook_targets.policy),
                event_hooks={"request": [carry_trace_context]},  # ADR 0033
            ),
            WebhookPolicy(
                max_attempts=settings.webhook_max_attempts,
                timeout_seconds=settings.webhook_timeout_seconds,
            ),
            platform.webhook_targets,
            clock=utcnow,
            random=random.random,
        )
    )
    # Every process binds the upkeep, before a recovered tick can run: DBOS's own queue,
    # which carries the scheduled ticks, is worked by every process, API-only ones too.
    maintenance.bind(_upkeep(platform))
    system_url = _dbos_system_url(settings)
    config: DBOSConfig = {
        "name": "payerbridge",
        "system_database_url": system_url,
        "application_version": __version__,
        "executor_id": settings.worker_id,
        "log_level": "WARNING",
    }
    engine = create_workflow_engine(system_url, max_connections=settings.database_max_connections)
    _workflow_engines.append(engine)
    config["system_database_engine"] = engine
    if platform.checkpointer is not None:  # SQLite
        platform.checkpointer.watch(system_url)
    DBOS(config=config)
    if not work:
        DBOS.listen_queues([])
    DBOS.launch()
    exchange.register_queue(
        exchange.QueueLimits(
            partner_concurrency=settings.partner_concurrency,
            partner_rate_per_second=settings.partner_rate_per_second,
            worker_concurrency=settings.worker_concurrency,
            polling_interval_seconds=settings.queue_polling_seconds,
        )
    )
    webhooks.register_queue()
    bulk.register_queue(
        bulk.BulkQueueLimits(
            client_concurrency=settings.bulk_client_concurrency,
            worker_concurrency=settings.bulk_worker_concurrency,
            polling_interval_seconds=settings.queue_polling_seconds,
        )
    )
    onboarding.register_queue(
        partner_concurrency=settings.onboarding_partner_concurrency,
        polling_interval_seconds=settings.queue_polling_seconds,
    )
    platform.adapters.transactions.relay_deliveries = webhooks.enqueue_deliveries
    if work:
        maintenance.schedule(sweep_seconds=settings.upkeep_sweep_seconds)


def _upkeep(platform: Platform) -> Upkeep:
    """The use cases of the scheduled upkeep workflows, on this platform."""
    from payerbridge.workflows.exchange import unstarted_exchanges
    from payerbridge.workflows.maintenance import Upkeep

    retention = timedelta(hours=platform.settings.idempotency_retention_hours)
    grace = timedelta(seconds=platform.settings.upkeep_grace_seconds)
    return Upkeep(
        sign_checkpoints=audit_checkpointer(platform),
        # Not moved for the grace: the API process has had time to enqueue it itself.
        unstarted_exchanges=lambda: unstarted_exchanges(platform.exchange_ports, older_than=grace),
        # Overdue by the grace: a workflow that was started sleeps until it is due.
        overdue_deliveries=lambda: platform.webhooks.overdue(before=utcnow() - grace),
        purge_idempotent_answers=lambda: _in_unit(
            platform, lambda unit: platform.idempotency.purge(unit, before=unit.now - retention)
        ),
        forget_spent_assertions=lambda: forget_spent_assertions(platform.tokens, now=utcnow()),
        purge_disclosure_snapshots=lambda: _in_unit(
            platform, lambda unit: platform.snapshots.purge(unit, now=unit.now)
        ),
        unstarted_bulk_jobs=lambda: platform.bulk.jobs.unstarted(updated_before=utcnow() - grace),
        purge_bulk_jobs=lambda: _in_unit(
            platform, lambda unit: platform.bulk.jobs.purge(unit, now=unit.now)
        ),
    )


def _in_unit(platform: Platform, work: Callable[[UnitOfWork], int]) -> int:
    """An upkeep job in a unit of work of its own (what it dropped, as of ``unit.now``)."""
    with platform.transactions.begin() as unit:
        return work(unit)


_workflow_engines: list[Engine] = []


def shutdown_workflows(platform: Platform) -> None:
    from dbos import DBOS

    from payerbridge.workflows import webhooks

    platform.adapters.transactions.relay_deliveries = None
    DBOS.destroy()
    stop_tracing()  # its last spans sent
    webhooks.bind(None)
    while _workflow_engines:
        _workflow_engines.pop().dispose()
