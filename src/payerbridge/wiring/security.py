"""The security room's, the console's and the audit trail's adapters, wired once: what
``Platform`` keeps of them and the units of work built on them (``SecurityUnit``,
``OperatorUnit``, ``DataKeysUnit``, ``AuditUnit``, ``OversightUnit``), sharing each
instance (a rate limiter holds what it leased of the shared buckets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

from joserfc.jwk import ECKey

from payerbridge.config import Settings
from payerbridge.oversight.unit import AuditUnit, OversightUnit
from payerbridge.policies import rate_policy
from payerbridge.security.limits import RateLimiter
from payerbridge.security.model import ServerIdentity
from payerbridge.security.operator_accounts import OperatorPorts
from payerbridge.security.ports import ClientDirectory
from payerbridge.security.service import TokenService
from payerbridge.security.tokens import TokenVerifier, public_jwk
from payerbridge.security.unit import DataKeysUnit, OperatorUnit, SecurityUnit
from payerbridge.store.audit import SqlAuditChain
from payerbridge.store.audit_reads import SqlAuditReader
from payerbridge.store.data_keys import kek_path
from payerbridge.store.key_files import identity_secret
from payerbridge.store.oversight import SqlOversight
from payerbridge.store.rate_limits import SqlAllowances
from payerbridge.store.readiness import SqlReadiness
from payerbridge.store.sealed_columns import SqlSealedData, link_index_key
from payerbridge.webhooks.links import ReceivedLinks, link_key
from payerbridge.wiring.ports import operator_ports
from payerbridge.wiring.stores import Stores

__all__ = ["SecurityFields", "SecurityWiring", "received_links", "security_wiring"]


def received_links(settings: Settings) -> ReceivedLinks | None:
    """The signed links a finished exchange's webhook carries (None: configured off)."""
    seconds = settings.webhook_received_link_seconds
    if not seconds:
        return None
    key = link_key(identity_secret(settings))
    return ReceivedLinks(key, timedelta(seconds=seconds), settings.base_url.rstrip("/"))


class SecurityFields(TypedDict):
    """``Platform``'s fields of the security room, the console and the audit trail."""

    clients: ClientDirectory
    tokens: TokenService
    verifier: TokenVerifier
    limiter: RateLimiter
    udap_identity: ServerIdentity | None
    operators: OperatorPorts
    audit_chain: SqlAuditChain
    audit_reader: SqlAuditReader
    oversight: SqlOversight
    sealed_data: SqlSealedData
    kek_path: Path
    client_jwks: dict[str, Any]


@dataclass(frozen=True)
class SecurityWiring:
    fields: SecurityFields  # as ``Platform(**fields)`` takes them
    units: tuple[SecurityUnit, OperatorUnit, DataKeysUnit, AuditUnit, OversightUnit]


def security_wiring(
    settings: Settings,
    stores: Stores,
    tokens: TokenService,
    client_key: ECKey,
    udap_identity: ServerIdentity | None,
) -> SecurityWiring:
    """The platform's fields (``fields``), and the units in ``Units``' order (``units``)."""
    engine, reader, transactions = stores.engine, stores.reader, stores.transactions
    verifier = TokenVerifier(tokens.keys, issuer=settings.base_url, audience=tokens.policy.audience)
    allowances = SqlAllowances(engine)  # requests' and sign-ins' buckets, shared
    limiter = RateLimiter(rate_policy(settings), allowances)
    operators = operator_ports(settings, stores, allowances)
    chain = SqlAuditChain(engine, reader=reader)
    audit_reader = SqlAuditReader(reader)
    oversight = SqlOversight(engine, reader=reader)
    secret = identity_secret(settings)
    sealed = SqlSealedData(stores.keyring, link_index_key(secret), secret)
    kek = kek_path(settings)
    client_jwks = {"keys": [public_jwk(client_key, "ES384")]}
    units = (
        SecurityUnit(
            transactions, tokens.clients, tokens, verifier, limiter, udap_identity, client_jwks
        ),
        OperatorUnit(
            transactions,
            operators.accounts,
            operators.logins,
            operators.sessions,
            operators.clock,
            operators.break_glass,
            operators.buckets,
            stores.audit,
        ),
        DataKeysUnit(transactions, sealed, kek),
        AuditUnit(transactions, stores.audit, chain, audit_reader, operators.clock),
        OversightUnit(
            transactions, oversight, stores.exchanges, chain, SqlReadiness(engine), operators.clock
        ),
    )
    fields = SecurityFields(
        clients=tokens.clients,
        tokens=tokens,
        verifier=verifier,
        limiter=limiter,
        udap_identity=udap_identity,
        operators=operators,
        audit_chain=chain,
        audit_reader=audit_reader,
        oversight=oversight,
        sealed_data=sealed,
        kek_path=kek,
        client_jwks=client_jwks,
    )
    return SecurityWiring(fields, units)
