"""The ports each room's use cases are handed, built from the stores and the settings."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from payerbridge.backends.files import KeptSourceFiles
from payerbridge.backends.ingestion import Intake, hold_in
from payerbridge.backends.live import LiveSources
from payerbridge.backends.parallel import SecondProcess
from payerbridge.backends.service import SourceIngestion
from payerbridge.backends.sources import Sources
from payerbridge.bulk.unit import BulkRules, BulkUnit
from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.clocks import Clocks
from payerbridge.compliance.lifecycle import HoldPolicy, Retention
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.config import Settings
from payerbridge.consent.model import Requester
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.disclosure.reads import DisclosureContext, member_permits
from payerbridge.disclosure.scope import DataScope
from payerbridge.exchange.ports import (
    PartnerClient,
)
from payerbridge.exchange.requests import KEPT_REQUESTS
from payerbridge.exchange.unit import ExchangeWiring
from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.fhir.provenance import provenance_by
from payerbridge.fhir.resources import compartment_patient
from payerbridge.identity.guard import AttemptLimit
from payerbridge.identity.indexing import index_members
from payerbridge.identity.matching.decision import BULK
from payerbridge.identity.ports import IdentityStore
from payerbridge.metrics import PlatformMetrics
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.partners.key_sets import HttpxKeySetSource
from payerbridge.policies import (
    egress_policy,
    retry_policy,
    session_policy,
)
from payerbridge.provider_access.decisions import ProviderAccessReads
from payerbridge.routing.model import Organization
from payerbridge.routing.wellknown import wellknown_location
from payerbridge.security.limits import RateLimiter
from payerbridge.security.model import RegisteredClient, Role, TrustAnchors
from payerbridge.security.operator_accounts import LOGIN_RATES, OperatorPorts
from payerbridge.security.operators import BreakGlassPolicy
from payerbridge.security.service import TokenPolicy, TokenService
from payerbridge.security.tokens import KeysInForce
from payerbridge.sources.adapters import live_adapters
from payerbridge.store.audit_reads import SqlAuditReader
from payerbridge.store.bulk import SqlBulkJobs
from payerbridge.store.clients import SqlAssertionLedger, SqlClientDirectory
from payerbridge.store.exchange_search import SqlExchangeSearch
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.importer import refresh_statistics
from payerbridge.store.lifecycle import SqlLifecycleStore
from payerbridge.store.onboardings import SqlOnboardingStore
from payerbridge.store.operators import SqlOperatorAccounts
from payerbridge.store.provider_access import SqlAttributions, SqlOptOuts
from payerbridge.store.pull_schedules import SqlPullSchedules
from payerbridge.store.quarantine import SqlQuarantine
from payerbridge.store.rate_limits import SqlAllowances
from payerbridge.store.readings import SqlReadingsSource
from payerbridge.store.received import SqlReceivedStore
from payerbridge.store.refusals import SqlRefusalCounts
from payerbridge.store.source_files import SqlSourceFiles, SqlSourceMembers, SqlSourceWriter
from payerbridge.store.token_keys import (
    TokenKeyFiles,
    key_dir,
)
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId
from payerbridge.wiring.platform import new_id, utcnow
from payerbridge.wiring.stores import Stores

__all__ = [
    "DisclosureRules",
    "bulk_unit",
    "exchange_wiring",
    "member_consent_check",
    "onboarding_unit",
    "our_organization",
    "operator_ports",
    "plan_backends",
    "token_service",
]


@dataclass(frozen=True)
class DisclosureRules:
    """What may leave with a member's data, as configured: what a regular consent
    withholds (``segmentation``) and what the payer-to-payer rule lets leave at all
    (``scope``, ADR 0042)."""

    segmentation: SegmentationPolicy
    scope: DataScope


def token_service(
    settings: Settings,
    stores: Stores,
    key_sets: HttpxKeySetSource,
    rules: DisclosureRules,
    trust: TrustAnchors,
) -> TokenService:
    """Our token endpoint's service: the registered clients, their key sets, and a
    member-scoped token only while the member's consent lets the client read."""
    return TokenService(
        clients=SqlClientDirectory(stores.engine),
        assertions=SqlAssertionLedger(),
        key_sets=key_sets,
        transactions=stores.transactions,
        keys=KeysInForce(
            TokenKeyFiles(key_dir(settings)),
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
        member_consent=member_consent_check(settings, stores, rules),
        new_id=new_id,
    )


def our_organization(settings: Settings) -> Organization:
    """Who we are to the partners we ask: with our ``.well-known`` location where the
    Coverage we link is to carry it (ADR 0061)."""
    wellknown = wellknown_location(settings.base_url) if settings.wellknown_on_coverage else None
    base = f"{settings.base_url}/fhir"
    return Organization(settings.org_name, settings.org_npi, base, wellknown)


def exchange_wiring(
    settings: Settings, stores: Stores, client: PartnerClient, clocks: Clocks
) -> ExchangeWiring:
    """The outbound exchange's adapters (new payer), keeping the requester's clocks: what
    each of its units of work is built from (ADR 0051)."""
    return ExchangeWiring(
        transactions=stores.transactions,
        exchanges=stores.exchanges,
        partners=stores.partners,
        client=client,
        writer=stores.members,
        received=SqlReceivedStore(stores.engine, reader=stores.reader),
        breakers=stores.breakers,
        pulls=SqlPullSchedules(stores.engine, keyring=stores.keyring),
        consents=stores.consents,
        audit=stores.audit,
        search=SqlExchangeSearch(stores.reader, keyring=stores.keyring),
        audit_reader=SqlAuditReader(stores.reader),
        us=our_organization(settings),
        clock=utcnow,
        new_id=new_id,
        random=random.random,
        retry_policy=retry_policy(settings),
        consent_zone=ZoneInfo(settings.consent_time_zone),
        clocks=clocks,
    )


def operator_ports(settings: Settings, stores: Stores, allowances: SqlAllowances) -> OperatorPorts:
    """The console's accounts and sessions, sign-ins throttled (ADR 0035)."""
    accounts = SqlOperatorAccounts(stores.engine, reader=stores.reader)
    logins = RateLimiter(LOGIN_RATES, allowances)
    break_glass = BreakGlassPolicy(
        roles=frozenset(Role(role) for role in settings.break_glass_roles.split()),
        needs_approval=settings.break_glass_approval,
    )
    return OperatorPorts(
        accounts,
        stores.transactions,
        logins,
        session_policy(settings),
        utcnow,
        break_glass,
        buckets=allowances,
    )


def member_consent_check(
    settings: Settings, stores: Stores, rules: DisclosureRules
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
            segmentation=rules.segmentation,
            scope=rules.scope,
        )
        return member_permits(context, member)

    return member_consent


def bulk_unit(
    settings: Settings,
    stores: Stores,
    identity: IdentityStore,
    disclosure: DisclosureRules,
    clocks: Clocks | None = None,
) -> BulkUnit:
    """``$bulk-member-match`` jobs and the exports (old payer)."""
    rules = BulkRules(
        policy=BULK,
        us=Organization(settings.org_name, settings.org_npi, f"{settings.base_url}/fhir"),
        consent_zone=ZoneInfo(settings.consent_time_zone),
        output_lifetime=timedelta(hours=settings.bulk_output_hours),
        group_lifetime=timedelta(days=settings.bulk_group_days),
        chunk_members=settings.bulk_chunk_members,
        segmentation=disclosure.segmentation,
        scope=disclosure.scope,
        payer_to_payer_years=settings.payer_to_payer_years,
        attempts=AttemptLimit(
            settings.member_match_max_cards,
            timedelta(seconds=settings.member_match_window_seconds),
        ),
        refusal_window=timedelta(seconds=settings.audit_refusal_window_seconds),
    )
    return BulkUnit(
        transactions=stores.transactions,
        jobs=SqlBulkJobs(stores.engine, reader=stores.reader),
        identity=identity,
        consents=stores.consents,
        members=stores.members,
        rules=rules,
        clock=utcnow,
        mint_id=new_id,
        refusals=SqlRefusalCounts(),
        clocks=clocks,
        provider_access=ProviderAccessReads(
            SqlAttributions(stores.engine, reader=stores.reader),
            SqlOptOuts(stores.engine, reader=stores.reader),
            clocks.obligations.calendar if clocks is not None else BusinessCalendar(),
        ),
    )


def onboarding_unit(
    settings: Settings, stores: Stores, client: HttpxPartnerClient, clocks: Clocks | None = None
) -> OnboardingUnit:
    """Plan-year onboardings (new payer)."""
    return OnboardingUnit(
        transactions=stores.transactions,
        onboardings=SqlOnboardingStore(stores.engine, reader=stores.reader),
        partners=stores.partners,
        bulk=client,
        consents=stores.consents,
        writer=stores.members,
        received=SqlReceivedStore(stores.engine, reader=stores.reader),
        us=our_organization(settings),
        clock=utcnow,
        make_id=new_id,
        consent_zone=ZoneInfo(settings.consent_time_zone),
        chunk_members=settings.onboarding_chunk_members,
        clocks=clocks,
    )


def plan_backends(
    settings: Settings, sources: Sources, stores: Stores, identity: SqlIdentityStore
) -> dict[str, Any]:
    """The plan's backends: replicated sources' files mapped and kept, live sources asked
    at request time, both checked against their profiles (ADR 0031)."""
    us = Organization(settings.org_name, settings.org_npi)
    profiles = ProfileChecker.bundled()
    quarantine = SqlQuarantine(stores.engine, reader=stores.reader)
    hold = hold_in(quarantine)

    def index(unit: UnitOfWork, ids: Sequence[str]) -> None:
        index_members(identity, unit, ids, at=unit.now)

    intake = Intake(profiles.check, hold, provenance_by(us), index)
    files = KeptSourceFiles(
        SqlSourceFiles(stores.engine),
        intake,
        compartment_of=compartment_patient,
        new_id=new_id,
        second=SecondProcess(settings.ingest_parallel_bytes),
    )
    live = LiveSources(
        sources,
        live_adapters(sources, egress_policy(settings)),
        SqlSourceMembers(stores.reader),
        SqlSourceWriter(stores.members),
        intake,
    )
    ingestion = SourceIngestion(sources, files, lambda: refresh_statistics(stores.engine))
    return {"sources": ingestion, "live": live, "profiles": profiles, "quarantine": quarantine}


def lifecycle_ports(settings: Settings, stores: Stores) -> dict[str, Any]:
    """The data lifecycle's store and retention (ADR 0038), as ``Platform`` fields."""
    return {
        "lifecycle": SqlLifecycleStore(
            stores.engine, keyring=stores.keyring, requests=KEPT_REQUESTS
        ),
        "retention": Retention(
            raw_payload_grace=timedelta(hours=settings.raw_payload_grace_hours),
            request_grace=timedelta(hours=settings.request_retention_hours),
        ),
        "holds": HoldPolicy(counsel=frozenset(settings.hold_counsel.split())),
    }


def platform_metrics(stores: Stores, obligations: ObligationSet) -> PlatformMetrics:
    """The scrape's readings of the shared state, the rule's clocks judged by their
    at-risk windows."""
    readings = SqlReadingsSource(stores.reader, risk_windows=obligations.risk_windows())
    kept = tuple(obligations.by_id)  # each in the gauges, at zero while none is open
    return PlatformMetrics(readings, stores.partners.list, utcnow, obligations=kept)
