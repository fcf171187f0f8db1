"""The consent and disclosure rooms' units (ADR 0051), wired once: the old payer's
answers (``DisclosureUnit``), the plan's sources, webhooks, bulk jobs and onboardings;
and the ``Platform`` fields still built from the same adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from payerbridge.backends.sources import Sources
from payerbridge.backends.unit import SourcesUnit
from payerbridge.bulk.unit import BulkUnit
from payerbridge.compliance.clocks import Clocks
from payerbridge.config import Settings
from payerbridge.disclosure.paging import PagingRules
from payerbridge.disclosure.unit import DisclosureUnit
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.net.addresses import AddressPolicy
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Organization
from payerbridge.store.disclosures import SqlDisclosureSnapshots
from payerbridge.store.idempotency import SqlIdempotencyStore
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.refusals import SqlRefusalCounts
from payerbridge.store.webhooks import SqlWebhookStore
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.unit import WebhookUnit
from payerbridge.wiring.ports import (
    DisclosureRules,
    bulk_unit,
    onboarding_unit,
    plan_backends,
)
from payerbridge.wiring.stores import Stores

__all__ = ["DisclosureWiring", "Shared", "disclosure_wiring", "paging_rules"]


@dataclass(frozen=True)
class Shared:
    """What bootstrap builds once and these units share with others: the identity index,
    the obligation clocks, what may leave, the partner client, where outbound calls may
    go, the plan's sources."""

    identity: SqlIdentityStore
    clocks: Clocks
    rules: DisclosureRules
    client: HttpxPartnerClient
    egress: AddressPolicy
    sources: Sources


@dataclass(frozen=True)
class DisclosureWiring:
    units: tuple[DisclosureUnit, SourcesUnit, WebhookUnit, BulkUnit, OnboardingUnit]
    # Platform's fields on the units' own adapters: sources, live,
    # profiles, quarantine, snapshots, idempotency, refusals, webhooks, webhook targets.
    fields: dict[str, Any]


def disclosure_wiring(settings: Settings, stores: Stores, shared: Shared) -> DisclosureWiring:
    transactions, identity, clocks = stores.transactions, shared.identity, shared.clocks
    backends = plan_backends(settings, shared.sources, stores, identity)
    disclosure = DisclosureUnit(
        transactions,
        stores.members,
        backends["live"],
        stores.consents,
        stores.audit,
        SqlDisclosureSnapshots(stores.engine, reader=stores.reader),
        paging_rules(settings, shared.rules),
        Organization(settings.org_name, settings.org_npi),
        identity,
        clocks,
        SqlRefusalCounts(),
        SqlIdempotencyStore(),
    )
    sources = SourcesUnit(
        transactions, backends["sources"], backends["live"], backends["quarantine"]
    )
    webhooks = WebhookUnit(
        transactions,
        SqlWebhookStore(stores.engine, reader=stores.reader),
        WebhookTargets(shared.egress),
    )
    units = (
        disclosure,
        sources,
        webhooks,
        bulk_unit(settings, stores, identity, shared.rules, clocks),
        onboarding_unit(settings, stores, shared.client, clocks),
    )
    fields = {
        **backends,
        "snapshots": disclosure.snapshots,
        "idempotency": disclosure.idempotency,
        "refusals": disclosure.refusals,
        "webhooks": webhooks.webhooks,
        "webhook_targets": webhooks.targets,
    }
    return DisclosureWiring(units, fields)


def paging_rules(settings: Settings, disclosure: DisclosureRules) -> PagingRules:
    """``$everything`` and searches: our FHIR base and NPI, the page size, how long a
    first page's next links work, the service-date window, what may leave."""
    return PagingRules(
        fhir_base=f"{settings.base_url}/fhir",
        source_npi=settings.org_npi,
        page_size=settings.everything_page_size,
        snapshot_lifetime=timedelta(seconds=settings.everything_snapshot_seconds),
        payer_to_payer_years=settings.payer_to_payer_years,
        segmentation=disclosure.segmentation,
        held_types=SUPPORTED_TYPES,
        scope=disclosure.scope,
    )
