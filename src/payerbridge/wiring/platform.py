"""The ``Platform`` the edges are handed: every port, wired, and the adapters its own
plumbing needs; the clock and the ids it is wired with."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from payerbridge.audit.ports import AuditChain, AuditLog, AuditReader
from payerbridge.audit.refusals import RefusalCounts
from payerbridge.backends.live import LiveSources
from payerbridge.backends.quarantine import Quarantine
from payerbridge.backends.service import SourceIngestion
from payerbridge.backends.unit import SourcesUnit
from payerbridge.bulk.unit import BulkUnit
from payerbridge.clock import utcnow
from payerbridge.compliance.clocks import ClockReader, Clocks
from payerbridge.compliance.lifecycle import HoldPolicy, LifecycleStore, Retention
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.compliance.unit import ComplianceUnit
from payerbridge.config import Settings
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.disclosure.ports import DisclosureSnapshots, MemberStore
from payerbridge.disclosure.scope import DataScope
from payerbridge.disclosure.unit import DisclosureUnit
from payerbridge.exchange.operations.search import ExchangeSearch
from payerbridge.exchange.ports import (
    BreakerBoard,
    ExchangeLedger,
    PartnerClient,
    Transactions,
)
from payerbridge.exchange.unit import ExchangeUnit, ExchangeWiring
from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.idempotency.ports import IdempotencyStore
from payerbridge.identity.indexing import index_members
from payerbridge.identity.ports import IdentityStore
from payerbridge.identity.unit import IdentityUnit
from payerbridge.metrics import PlatformMetrics
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.oversight.health_unit import PartnerHealthUnit
from payerbridge.oversight.ports import Oversight, PartnerCalls
from payerbridge.oversight.unit import AuditUnit, OversightUnit
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.partners.discovery import HttpxPartnerDiscovery
from payerbridge.partners.key_sets import HttpxKeySetSource
from payerbridge.provider_access.unit import ProviderAccessUnit
from payerbridge.routing.model import Organization
from payerbridge.routing.ports import PartnerDiscovery, PartnerRegistry
from payerbridge.routing.unit import DirectoryUnit, PartnersUnit
from payerbridge.security.limits import RateLimiter
from payerbridge.security.model import ServerIdentity
from payerbridge.security.operator_accounts import OperatorPorts
from payerbridge.security.ports import ClientDirectory
from payerbridge.security.service import TokenService
from payerbridge.security.tokens import TokenVerifier
from payerbridge.security.unit import DataKeysUnit, OperatorUnit, SecurityUnit
from payerbridge.store.engines import WalCheckpointer
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.importer import FileReport, import_files, refresh_statistics
from payerbridge.store.partner_health import SqlPartnerCalls
from payerbridge.store.refusals import SqlRefusalCounts
from payerbridge.store.sealed_columns import SqlSealedData
from payerbridge.store.unit_of_work import SqlTransactions
from payerbridge.transactions import UnitOfWork
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.ports import WebhookStore
from payerbridge.webhooks.unit import WebhookUnit

__all__ = ["Adapters", "Platform", "Units", "new_id", "utcnow"]


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


@dataclass(frozen=True)
class Units:
    """Each room's unit of work, built fresh for each use case (ADR 0051): the edges take
    one per request or command, the workflows one per run. A room's unit is kept here
    wired once, as a template; each call hands out a copy of it, outside any transaction."""

    exchange_wiring: ExchangeWiring
    identity_unit: IdentityUnit
    # The old payer's answers, and the plan's own sources and feeds.
    disclosure_unit: DisclosureUnit
    sources_unit: SourcesUnit
    webhook_unit: WebhookUnit
    bulk_unit: BulkUnit
    onboarding_unit: OnboardingUnit
    # Who may call, the console's people, the keys, the audit trail, oversight.
    security_unit: SecurityUnit
    operator_unit: OperatorUnit
    data_keys_unit: DataKeysUnit
    audit_unit: AuditUnit
    oversight_unit: OversightUnit
    # The partner directory and its health; the rule's clocks and the data lifecycle.
    partners_unit: PartnersUnit
    partner_health_unit: PartnerHealthUnit
    compliance_unit: ComplianceUnit
    provider_access_unit: ProviderAccessUnit
    directory_unit: DirectoryUnit  # the directory with what its imports hold (ADR 0062)
    # Where received records go on to: the plan's FHIR servers (ADR 0053); None: nowhere.
    destination_unit: DestinationUnit | None = None

    def destinations(self) -> DestinationUnit | None:
        return None if self.destination_unit is None else replace(self.destination_unit)

    def exchange(self) -> ExchangeUnit:
        return ExchangeUnit(self.exchange_wiring)

    def identity(self) -> IdentityUnit:
        return replace(self.identity_unit)

    def disclosure(self) -> DisclosureUnit:
        return replace(self.disclosure_unit)

    def sources(self) -> SourcesUnit:
        return replace(self.sources_unit)

    def webhooks(self) -> WebhookUnit:
        return replace(self.webhook_unit)

    def bulk(self) -> BulkUnit:
        return replace(self.bulk_unit)

    def onboarding(self) -> OnboardingUnit:
        return replace(self.onboarding_unit)

    def security(self) -> SecurityUnit:
        return replace(self.security_unit)

    def operators(self) -> OperatorUnit:
        return replace(self.operator_unit)

    def data_keys(self) -> DataKeysUnit:
        return replace(self.data_keys_unit)

    def audit(self) -> AuditUnit:
        return replace(self.audit_unit)

    def oversight(self) -> OversightUnit:
        return replace(self.oversight_unit)

    def partners(self) -> PartnersUnit:
        return replace(self.partners_unit)

    def directory(self) -> DirectoryUnit:
        return replace(self.directory_unit)

    def partner_health(self) -> PartnerHealthUnit:
        return replace(self.partner_health_unit)

    def compliance(self) -> ComplianceUnit:
        return replace(self.compliance_unit)

    def provider_access(self) -> ProviderAccessUnit:
        return replace(self.provider_access_unit)


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    reader: Engine  # the engine for reads: ``engine`` itself on PostgreSQL
    members: MemberStore
    segmentation: SegmentationPolicy  # what a regular consent withholds, by which code sets
    scope: DataScope  # what the payer-to-payer rule lets leave at all (ADR 0042)
    obligations: ObligationSet  # the rule's clocks on the plan's calendar (ADR 0037)
    clocks: Clocks  # the obligation rows each exchange, case and request keeps
    clock_reader: ClockReader  # ... read for the compliance report
    lifecycle: LifecycleStore  # legal holds, the purge and erasure (ADR 0038)
    retention: Retention  # how long raw payloads and requests are kept after they end
    holds: HoldPolicy  # who may release a legal hold (ADR 0046)
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
    units: Units  # a unit of work per room, for each use case (ADR 0051)
    sources: SourceIngestion  # the plan's backends: replicated files mapped and kept
    live: LiveSources  # the plan's backends asked at request time
    profiles: ProfileChecker  # the shipped profiles every produced resource must meet
    quarantine: Quarantine  # what failed them, held for operators (ADR 0030)
    oversight: Oversight  # the console's dashboard, jobs and partners' recent exchanges
    operators: OperatorPorts  # the console's accounts and sessions (ADR 0035)
    metrics: PlatformMetrics  # the shared state as read now, and /metrics (ADR 0032)
    adapters: Adapters
    sealed_data: SqlSealedData  # the data keys and the columns they seal (ADR 0039)
    kek_path: Path  # the key-encryption key's file
    # The public half of the key we sign assertions to partners with, as a JWK Set.
    client_jwks: dict[str, Any] = field(default_factory=dict)
    checkpointer: WalCheckpointer | None = None  # SQLite only
    # Refused $member-match and $bulk-member-match calls, counted (ADR 0045).
    refusals: RefusalCounts[UnitOfWork] = field(default_factory=SqlRefusalCounts)

    @property
    def partner_calls(self) -> PartnerCalls:
        """Each partner's recent calls and probes, for its health (read from the audit
        trail on the reader)."""
        return SqlPartnerCalls(self.engine, reader=self.reader)

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
        index_members(self.adapters.identity, unit, member_ids, at=unit.now)

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
        self.sealed_data.close()
        self.reader.dispose()
        self.engine.dispose()
