"""Who may call us and with what (pure): registered clients, scopes, roles, the access
token's claims, and the OAuth errors of the token endpoint.

Three kinds of caller, each known by the scopes its token carries:
- **operators** (``payerbridge/operator``): partners, clients, reviews, the identity
  graph, replay, everyone's webhooks;
- **requesting payers**: the FHIR API, by SMART ``system/<Type>.rs`` scopes and the
  HRex/PDex operation scopes (``$member-match``);
- **the plan's own systems** (``payerbridge/exchanges``): submit exchanges, capture
  consents, subscribe to webhooks, each seeing only what it created.

And the people who run payerbridge through its console: operator accounts, their roles
and what each may do, their sessions and break-glass grants (the rules on them are
``operators.py``'s, ADR 0035); the UDAP trust anchors and our own certificate and key;
an access-token signing key with when it was made; a rate limit and a lease of its
shared bucket (the limiter is ``limits.py``'s, ADR 0025).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey

from payerbridge.errors import Forbidden, Issue, OAuthError, OAuthErrorCode
from payerbridge.types import ClientId, MemberId

__all__ = [
    "AUDITOR_SCOPE",
    "AccessClaims",
    "AddClient",
    "ApproveOrganization",
    "BULK_MEMBER_MATCH_SCOPES",
    "PROVIDER_MEMBER_MATCH_SCOPES",
    "ClientKeys",
    "ClientKind",
    "DatedKey",
    "EXCHANGES_SCOPE",
    "Lease",
    "MEMBER_MATCH_SCOPE",
    "OAuthError",
    "OPERATOR_SCOPE",
    "Operator",
    "OperatorSession",
    "OrganizationEvidence",
    "PERMISSIONS",
    "Permission",
    "Principal",
    "Rate",
    "RegisteredClient",
    "RevokeClient",
    "Role",
    "ServerIdentity",
    "TokenAsked",
    "TrustAnchors",
    "UnmaskGrant",
    "covers",
    "granted_types",
    "is_resource_scope",
    "parse_scopes",
    "require_scope",
    "resource_scope",
    "uncovered_scopes",
]

OPERATOR_SCOPE = "payerbridge/operator"
# Reads the audit trail (AuditEvent, every exchange's timeline) and nothing else: the
# people who check the operators are not operators (issue 53).
AUDITOR_SCOPE = "payerbridge/auditor"
EXCHANGES_SCOPE = "payerbridge/exchanges"
MEMBER_MATCH_SCOPE = "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
# PDex 2.2's scope for $bulk-member-match, and 2.1's (the ballot-era canonical). A client
# holding the HRex member-match scope may match in bulk too: the same question, many times.
BULK_MEMBER_MATCH_SCOPES = (
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch",
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match",
    MEMBER_MATCH_SCOPE,
)
# PDex 2.2's Provider Access match (ADR 0059): a provider's own, not a payer's bulk scope.
PROVIDER_MEMBER_MATCH_SCOPES = (
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/ProviderMemberMatch",
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/provider-member-match",
)

# SMART v2 (system/Patient.rs) and v1 (system/Patient.read) resource scopes.
_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>system|patient)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<access>read|write|\*|[cruds]+)$"
)
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 scope-token


class ClientKind(StrEnum):
    SMART = "smart"  # registered by an operator with a JWKS (inline or by URL)
    UDAP = "udap"  # registered itself with a software statement signed under a trust anchor


class OrganizationEvidence(StrEnum):
    """What binds a client to the organization (NPI) it acts for; consents name NPIs, so
    a client is given tokens only once the pairing rests on something we can check."""

    CERTIFICATE = "certificate"  # its UDAP certificate carries the NPI (ADR 0009)
    OPERATOR = "operator"  # an operator registered the client or approved the pairing
    PENDING = "pending"  # claimed in a software statement only: awaits an operator


@dataclass(frozen=True)
class RegisteredClient:
    """A system allowed to ask our token endpoint for access tokens."""

    client_id: ClientId
    name: str
    npi: str
    scopes: frozenset[str]
    kind: ClientKind = ClientKind.SMART
    jwks: dict[str, Any] | None = None  # the client's public keys, inline
    jwks_url: str | None = None  # ... or where to read them
    certificate_uri: str | None = None  # UDAP: the URI its certificates must name
    revoked_at: datetime | None = None
    npi_evidence: OrganizationEvidence = OrganizationEvidence.OPERATOR
    npi_vouched_by: str | None = None  # the operator (or "certificate") who bound the NPI
    npi_vouched_at: datetime | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_awaiting_approval(self) -> bool:
        """Its NPI is only claimed: no token until an operator approves the pairing."""
        return self.npi_evidence is OrganizationEvidence.PENDING


@dataclass(frozen=True)
class AccessClaims:
    """What an access token we issued says (and all a request needs to know)."""

    client_id: ClientId
    scopes: frozenset[str]
    issued_at: datetime
    expires_at: datetime
    token_id: str
    patient: MemberId | None = None  # a member-scoped token reads this member only
    certificate_thumbprint: str | None = None  # RFC 8705 cnf.x5t#S256


@dataclass(frozen=True)
class Principal:
    """An authenticated caller of one request."""

    client_id: ClientId
    npi: str
    scopes: frozenset[str]
    patient: MemberId | None = None

    @property
    def is_operator(self) -> bool:
        return OPERATOR_SCOPE in self.scopes

    @property
    def is_auditor(self) -> bool:
        return AUDITOR_SCOPE in self.scopes


def parse_scopes(value: str, *, parameter: str = "scope") -> frozenset[str]:
    """A space-delimited scope string as a set; a malformed token is named, not dropped."""
    scopes = value.split()
    for scope in scopes:
        if not _SCOPE_TOKEN.match(scope):
            raise OAuthError(
                OAuthErrorCode.INVALID_SCOPE, f"{parameter} holds a malformed scope token"
            )
    return frozenset(scopes)


def _access_letters(access: str) -> set[str]:
    if access in ("*", "write"):
        return set("cruds") if access == "*" else set("cud")
    if access == "read":
        return {"r", "s"}
    return set(access)


def covers(allowed: str, wanted: str) -> bool:
    """Whether holding ``allowed`` grants ``wanted``: equal, or a wildcard or wider
    SMART resource scope in the same context (``system/*.rs`` covers ``system/EOB.r``)."""
    if allowed == wanted:
        return True
    have, need = _RESOURCE_SCOPE.match(allowed), _RESOURCE_SCOPE.match(wanted)
    if have is None or need is None or have["context"] != need["context"]:
        return False
    if have["type"] != "*" and have["type"] != need["type"]:
        return False
    return _access_letters(need["access"]) <= _access_letters(have["access"])


def uncovered_scopes(allowed: frozenset[str], wanted: frozenset[str]) -> list[str]:
    """The wanted scopes none of ``allowed`` grants, sorted. A ``system/`` scope also
    grants its ``patient/`` twin: one member's data is less than everyone's."""
    widened = allowed | {
        "patient/" + scope.removeprefix("system/")
        for scope in allowed
        if scope.startswith("system/")
    }
    return sorted(w for w in wanted if not any(covers(a, w) for a in widened))


def granted_types(principal: Principal, access: str = "rs") -> frozenset[str] | None:
    """The resource types the caller's token lets it read with ``access`` (SMART v2
    letters; a v1 ``read`` grants ``rs``), in its own context (``system/``, or
    ``patient/`` for a member-scoped token, which its ``system/`` scopes also grant):
    None when a wildcard grants every type. What an export or ``$everything`` may hold."""
    context = "patient" if principal.patient is not None else "system"
    types: set[str] = set()
    for scope in principal.scopes:
        have = _RESOURCE_SCOPE.match(scope)
        if have is None or have["context"] not in (context, "system"):
            continue
        if not set(access) <= _access_letters(have["access"]):
            continue
        if have["type"] == "*":
            return None
        types.add(have["type"])
    return frozenset(types)


def is_resource_scope(scope: str) -> bool:
    """A SMART resource scope (``system/Patient.rs``, ``patient/*.read``)."""
    return _RESOURCE_SCOPE.match(scope) is not None


def resource_scope(resource_type: str, access: str = "rs") -> str:
    return f"system/{resource_type}.{access}"


def require_scope(principal: Principal, *needed: str) -> None:
    """Allow when the caller's token grants any of ``needed``; else Forbidden (403,
    insufficient scope), naming what would do."""
    if principal.patient is not None:  # a member-scoped token holds patient/ scopes
        needed = tuple(
            "patient/" + need.removeprefix("system/") if need.startswith("system/") else need
            for need in needed
        )
    if any(covers(have, need) for have in principal.scopes for need in needed):
        return
    names = " or ".join(needed)
    raise Forbidden(
        f"the access token lacks the scope this operation needs ({names})",
        issues=[Issue(f"request a token with scope {names}", "Authorization", "forbidden")],
    )


class Role(StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class Permission(StrEnum):
    READ = "read"  # the dashboard, exchanges and their timelines, jobs, consents
    REVIEW = "review"  # the identity review queue: read the cases, decide them
    INTERVENE = "intervene"  # replay, resubmit, cancel exchanges; revoke consents
    PARTNERS = "partners"  # the partner directory, its health, breakers, maintenance
    AUDIT = "audit"  # the audit chain's verification, checkpoints, events


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.REVIEWER: frozenset({Permission.READ, Permission.REVIEW}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.INTERVENE, Permission.PARTNERS}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
}


@dataclass(frozen=True)
class Operator:
    """A console account; ``password_hash`` is argon2id's encoded hash, never the password."""

    name: str
    role: Role
    password_hash: str
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None = None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


@dataclass(frozen=True)
class OperatorSession:
    """A signed-in browser: the SHA-256 of its token, whose it is, and its times."""

    token_hash: str
    operator: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class UnmaskGrant:
    """A break-glass grant: ``operator`` sees masked identifiers until ``expires_at``.
    Where the plan asks a second person, it ``needs_approval``: until another operator
    approved it, it is a request (``expires_at`` is then when the request lapses), and
    once approved it lasts ``minutes`` from ``approved_at``."""

    id: str
    operator: str
    reason: str
    granted_at: datetime
    expires_at: datetime
    needs_approval: bool = False
    minutes: int | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def is_pending(self) -> bool:
        return self.needs_approval and self.approved_at is None


@dataclass(frozen=True)
class Rate:
    """``burst`` requests at once, then ``per_second`` (both more than 0)."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate is more than 0 a second, with a burst of 1 or more")

    @property
    def interval(self) -> float:
        """Seconds between two requests at the rate."""
        return 1.0 / self.per_second

    def describe(self) -> str:
        per_minute = self.per_second * 60
        if per_minute < 600:
            return f"{per_minute:g} requests a minute (bursts of {self.burst})"
        return f"{self.per_second:g} requests a second (bursts of {self.burst})"


@dataclass(frozen=True)
class Lease:
    """What a lease got: ``granted`` requests (0: refused) and the bucket's arrival time
    after it."""

    granted: int
    tat: float


@dataclass(frozen=True)
class TrustAnchors:
    anchors: tuple[x509.Certificate, ...]
    revocations: tuple[x509.CertificateRevocationList, ...] = ()


@dataclass(frozen=True)
class ServerIdentity:
    """This server's certificate from the trust community and its key: what signs our
    UDAP metadata, and our software statements and assertions to UDAP partners."""

    chain: tuple[x509.Certificate, ...]
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @property
    def algorithm(self) -> str:
        """The JWS algorithm the key signs with: by its curve for EC, RS256 for RSA."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return {"secp256r1": "ES256", "secp384r1": "ES384"}.get(self.key.curve.name, "ES512")
        return "RS256"

    @property
    def uris(self) -> tuple[str, ...]:
        """The URIs the certificate names (subject alternative names)."""
        try:
            names = self.chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ()
        return tuple(names.value.get_values_for_type(x509.UniformResourceIdentifier))

    def client_uri(self, preferred: str) -> str:
        """The URI we register under (a software statement's ``iss``): ``preferred`` (our
        FHIR base) when the certificate names it, else the first URI it names."""
        if preferred in self.uris:
            return preferred
        if not self.uris:
            raise ValueError("the UDAP certificate names no URI (subject alternative name)")
        return self.uris[0]


@dataclass(frozen=True)
class DatedKey:
    key: ECKey
    created_at: datetime


@dataclass(frozen=True)
class ClientKeys:
    """Where a SMART client's public keys are: a JWK Set given at registration, or the
    URL it is served at (exactly one of them, ``registration.smart_client`` checks)."""

    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None


@dataclass(frozen=True)
class AddClient:
    """An operator (``actor``) registers ``client``, vouching for its NPI."""

    client: RegisteredClient
    actor: str


@dataclass(frozen=True)
class ApproveOrganization:
    """An operator (``actor``) approves the pairing of a waiting client with the NPI it
    claims, named again (``npi``) so that an approval is of what they checked."""

    client_id: ClientId
    npi: str
    actor: str


@dataclass(frozen=True)
class RevokeClient:
    """An operator (``actor``) revokes ``client_id``: its tokens stop working at once."""

    client_id: ClientId
    actor: str


@dataclass(frozen=True)
class TokenAsked:
    """What an access token is issued for: the client, the scopes granted, the member a
    patient-scoped token is limited to, and the client certificate it is bound to
    (RFC 8705), when asked over mutual TLS."""

    client_id: ClientId
    scopes: frozenset[str]
    patient: MemberId | None = None
    certificate_thumbprint: str | None = None
