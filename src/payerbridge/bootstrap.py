"""The one place that picks concrete adapters and wires them into the use cases.

``build_platform`` builds the ``Platform`` here from the parts in ``payerbridge.wiring``
(the stores, the partner client, each room's ports); ``launch_workflows`` and
``shutdown_workflows`` start and stop DBOS around it. The edges import all of it from here."""

from __future__ import annotations

import logging

import httpx

from payerbridge.backends.sources import load_sources, sources_path
from payerbridge.compliance.clocks import Clocks
from payerbridge.config import Settings
from payerbridge.identity.unit import IdentityUnit
from payerbridge.policies import (
    compliance_obligations,
    data_scope,
    egress_policy,
    response_caps,
    segmentation_policy,
)
from payerbridge.store.data_keys import new_kek_file, read_kek
from payerbridge.store.identity import SqlIdentityStore
from payerbridge.store.key_files import identity_secret
from payerbridge.store.obligation_clocks import SqlObligationClocks
from payerbridge.store.sealing import kek_fingerprint
from payerbridge.store.token_keys import key_dir, load_client_key, rotate_access_token_keys
from payerbridge.store.trust_anchors import load_server_identity, load_trust_anchors
from payerbridge.wiring.audit import audit_checkpointer, verify_audit_chain
from payerbridge.wiring.destinations import destination_unit
from payerbridge.wiring.disclosure import Shared, disclosure_wiring
from payerbridge.wiring.partner_units import partner_units
from payerbridge.wiring.partners import (
    Reach,
    key_set_source,
    our_udap_client,
    partner_client,
    partner_discovery,
)
from payerbridge.wiring.platform import Adapters, Platform, Units, new_id, utcnow
from payerbridge.wiring.ports import (
    DisclosureRules,
    exchange_wiring,
    platform_metrics,
    token_service,
)
from payerbridge.wiring.security import security_wiring
from payerbridge.wiring.stores import open_stores
from payerbridge.wiring.workflows import launch_workflows, shutdown_workflows

__all__ = [
    "Platform",
    "audit_checkpointer",
    "verify_audit_chain",
    "build_platform",
    "identity_secret",
    "kek_fingerprint",
    "new_kek_file",
    "read_kek",
    "rotate_access_token_keys",
    "launch_workflows",
    "new_id",
    "shutdown_workflows",
    "utcnow",
]


logger = logging.getLogger(__name__)


def build_platform(
    settings: Settings,
    *,
    partner_transport: httpx.BaseTransport | None = None,
    run_migrations: bool = True,
) -> Platform:
    """Open the database (migrating it to the newest schema) and wire the adapters."""
    segmentation = segmentation_policy(settings)
    scope = data_scope(settings)
    obligations = compliance_obligations(settings)
    sources = load_sources(sources_path(settings.sources_file, settings.data_dir))
    stores = open_stores(settings, run_migrations=run_migrations)
    engine, reader, transactions = stores.engine, stores.reader, stores.transactions
    client_key = load_client_key(key_dir(settings))
    trust = load_trust_anchors(settings.udap_trust_anchors, settings.udap_revocation_lists)
    udap_identity = load_server_identity(settings.udap_certificate, settings.udap_certificate_key)
    udap_client = our_udap_client(settings, udap_identity)
    egress = egress_policy(settings)
    reach = Reach(settings, egress, response_caps(settings), udap_client, partner_transport)
    client = partner_client(reach, client_key)
    clocks = Clocks(obligations, SqlObligationClocks(engine, reader=reader))
    exchange = exchange_wiring(settings, stores, client, clocks)
    identity = SqlIdentityStore(
        engine, identity_secret(settings), keyring=stores.keyring, reader=reader
    )
    key_sets = key_set_source(reach)
    rules = DisclosureRules(segmentation, scope)
    tokens = token_service(settings, stores, key_sets, rules, trust)
    discovery = partner_discovery(reach, trust)
    guard = security_wiring(settings, stores, tokens, client_key, udap_identity)
    shared = Shared(identity, clocks, rules, client, egress, sources)
    ours = disclosure_wiring(settings, stores, shared)
    theirs = partner_units(settings, stores, discovery, obligations, guard.fields["oversight"])
    compliance = theirs["compliance_unit"]
    destinations = destination_unit(sources, stores, egress, segmentation)
    return Platform(
        settings=settings,
        engine=engine,
        reader=reader,
        members=stores.members,
        segmentation=segmentation,
        scope=scope,
        obligations=obligations,
        clocks=clocks,
        clock_reader=compliance.clock_reader,
        lifecycle=compliance.lifecycle,
        retention=compliance.retention,
        holds=compliance.holds,
        partners=stores.partners,
        exchanges=stores.exchanges,
        exchange_search=exchange.search,
        breakers=stores.breakers,
        transactions=transactions,
        audit=stores.audit,
        consents=stores.consents,
        discovery=discovery,
        identity=identity,
        client=client,
        units=Units(
            exchange,
            IdentityUnit(
                transactions, identity, stores.members, obligations, clocks.ledger, stores.audit
            ),
            *ours.units,
            *guard.units,
            **theirs,
            destination_unit=destinations,
        ),
        **ours.fields,  # the disclosure room's, the sources', the webhooks', on its units
        metrics=platform_metrics(stores, obligations),
        adapters=Adapters(identity, client, transactions, key_sets, discovery),
        checkpointer=stores.checkpointer,
        **guard.fields,  # the security room's, the console's, the audit trail's
    )
