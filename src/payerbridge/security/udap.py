"""UDAP B2B (HL7 FAST Security IG) for clients whose trust is a certificate: dynamic
registration with a software statement, and authentication JWTs, both signed with the
key of a certificate that chains to an operator's trust anchor (``x5c`` header). Pure:
the anchors, the time and the URLs are given.

Which organization a UDAP client acts for is its NPI, which consents and Provenance
name. FAST carries the requesting organization in the B2B authorization extension
(``extensions.hl7-b2b.organization_id``) of each token request; we ask for the same
object in the software statement, so that a registration is tied to one NPI, and hold
every later token request to it (ADR 0009). The statement only claims it: the
certificate, or an operator, proves it (``security.organization``, ADR 0026).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from payerbridge.errors import OAuthErrorCode
from payerbridge.npi import is_valid_npi
from payerbridge.security.assertions import (
    CERTIFICATE_HEADERS,
    AssertionClaims,
    ClaimsCheck,
    assertion_claims,
    check_assertion_claims,
)
from payerbridge.security.certificates import (
    CertificateRejected,
    VerifiedCertificate,
    certificate_chain,
    verify_certificate_chain,
)
from payerbridge.security.model import (
    ClientKind,
    OAuthError,
    RegisteredClient,
    ServerIdentity,
    TrustAnchors,
    parse_scopes,
    uncovered_scopes,
)
from payerbridge.security.organization import NPI_SYSTEMS, certificate_npis
from payerbridge.types import ClientId

__all__ = [
    "B2B_EXTENSION",
    "B2bOrganization",
    "OurJwt",
    "b2b_assertion",
    "read_signed_metadata",
    "signed_metadata",
    "software_statement",
    "UDAP_ALGORITHMS",
    "SoftwareStatement",
    "read_software_statement",
    "udap_client",
    "verify_udap_assertion",
]

UDAP_ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")
B2B_EXTENSION = "hl7-b2b"
# Why we ask for a partner's data: payer-to-payer exchange is a coverage operation.
_PURPOSE_OF_USE = "urn:oid:2.16.840.1.113883.5.8#COVERAGE"


@dataclass(frozen=True)
class B2bOrganization:
    """The organization a B2B authorization extension names: by NPI, with its name."""

    npi: str
    name: str


@dataclass(frozen=True)
class OurJwt:
    """A JWT we send (an authentication JWT, a software statement): issued by ``issuer``
    (its subject too) for ``audience`` at ``now``, used once as ``token_id``."""

    issuer: str
    audience: str
    now: datetime
    token_id: str

    def claims(self) -> dict[str, Any]:
        return assertion_claims(self.issuer, self.audience, now=self.now, token_id=self.token_id)


@dataclass(frozen=True)
class SoftwareStatement:
    client_uri: str  # iss: one of the certificate's URIs
    client_name: str
    npi: str
    scopes: frozenset[str]
    token_id: str
    expires_at: datetime
    certificate: VerifiedCertificate


def _signed_by_certificate(
    token: str, trust: TrustAnchors, *, now: datetime, error: OAuthErrorCode, status: int
) -> tuple[dict[str, Any], VerifiedCertificate]:
    """The claims of a JWT signed with the key of its ``x5c`` leaf, once the chain holds."""
    try:
        header = dict(jws.extract_compact(token.encode(), registry=CERTIFICATE_HEADERS).headers())
    except (JoseError, ValueError) as exc:
        raise OAuthError(error, "not a signed JWT", status=status) from exc
    algorithm = header.get("alg")
    if algorithm not in UDAP_ALGORITHMS:
        raise OAuthError(error, f"signed with {', '.join(UDAP_ALGORITHMS)} only", status=status)
    try:
        verified = verify_certificate_chain(certificate_chain(header.get("x5c")), trust, now=now)
    except CertificateRejected as exc:
        raise OAuthError(error, exc.reason, status=status) from exc
    public = verified.leaf.public_key()
    key: ECKey | RSAKey
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = ECKey.import_key(public)
    elif isinstance(public, rsa.RSAPublicKey):
        key = RSAKey.import_key(public)
    else:
        raise OAuthError(error, "the certificate's key is neither RSA nor EC", status=status)
    try:
        decoded = jwt.decode(token, key, algorithms=[str(algorithm)], registry=CERTIFICATE_HEADERS)
    except (JoseError, ValueError) as exc:
        raise OAuthError(
            error, "the signature does not verify with the certificate's key", status=status
        ) from exc
    return dict(decoded.claims), verified


def _npi_of(extensions: Any, *, error: OAuthErrorCode, status: int) -> str:
    b2b = extensions.get(B2B_EXTENSION) if isinstance(extensions, dict) else None
    organization = b2b.get("organization_id") if isinstance(b2b, dict) else None
    if not isinstance(organization, str):
        raise OAuthError(
            error,
            f"extensions.{B2B_EXTENSION}.organization_id is required: the requesting "
            "organization's NPI, as http://hl7.org/fhir/sid/us-npi|<npi>",
            status=status,
        )
    system, _, value = organization.rpartition("|")
    if system not in NPI_SYSTEMS or not is_valid_npi(value):
        raise OAuthError(
            error,
            f"extensions.{B2B_EXTENSION}.organization_id must be an NPI "
            "(http://hl7.org/fhir/sid/us-npi|<10 digits with a valid check digit>)",
            status=status,
        )
    return value


def read_software_statement(
    statement: str, *, trust: TrustAnchors, allowed_scopes: frozenset[str], check: ClaimsCheck
) -> SoftwareStatement:
    """A software statement, checked as FAST asks for B2B client credentials clients
    (``check``'s audience: our registration URL); OAuthError
    (``invalid_software_statement`` or ``invalid_client_metadata``)."""
    bad = OAuthErrorCode.INVALID_SOFTWARE_STATEMENT
    claims, certificate = _signed_by_certificate(
        statement, trust, now=check.now, error=bad, status=400
    )
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or issuer not in certificate.uris:
        raise OAuthError(bad, "iss must be a URI in the certificate's subject alternative names")
    try:
        checked = check_assertion_claims(claims, ClientId(issuer), check)
    except OAuthError as exc:
        text = exc.description.replace("client_assertion", "software_statement")
        raise OAuthError(bad, text) from exc
    metadata = OAuthErrorCode.INVALID_CLIENT_METADATA
    if claims.get("grant_types") != ["client_credentials"]:
        raise OAuthError(metadata, 'grant_types must be ["client_credentials"] (B2B)')
    if claims.get("token_endpoint_auth_method") != "private_key_jwt":
        raise OAuthError(metadata, "token_endpoint_auth_method must be private_key_jwt")
    name = claims.get("client_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise OAuthError(metadata, "client_name is required (at most 200 characters)")
    scopes = parse_scopes(str(claims.get("scope") or ""))
    if not scopes:
        raise OAuthError(metadata, "scope is required")
    refused = uncovered_scopes(allowed_scopes, scopes)
    if refused:
        raise OAuthError(
            OAuthErrorCode.INVALID_CLIENT_METADATA,
            f"UDAP clients may not register for: {' '.join(refused)}",
        )
    npi = _npi_of(claims.get("extensions"), error=metadata, status=400)
    return SoftwareStatement(
        issuer, name.strip(), npi, scopes, checked.token_id, checked.expires_at, certificate
    )


def udap_client(statement: SoftwareStatement) -> RegisteredClient:
    """The client a software statement registers: its id derived from its URI, so that
    registering again (a renewed certificate) keeps the id."""
    digest = hashlib.sha256(statement.client_uri.encode()).hexdigest()[:32]
    return RegisteredClient(
        client_id=ClientId(f"udap-{digest}"),
        name=statement.client_name,
        npi=statement.npi,
        scopes=statement.scopes,
        kind=ClientKind.UDAP,
        certificate_uri=statement.client_uri,
    )


def verify_udap_assertion(
    assertion: str, *, client: RegisteredClient, trust: TrustAnchors, check: ClaimsCheck
) -> AssertionClaims:
    """A UDAP client's authentication JWT (``check``'s audience: our token URL): signed
    with a trusted certificate that still names the registered URI, the usual claims, and
    the B2B extension naming the registered organization."""
    claims, certificate = _signed_by_certificate(
        assertion, trust, now=check.now, error=OAuthErrorCode.INVALID_CLIENT, status=401
    )
    if client.certificate_uri not in certificate.uris:
        raise OAuthError(
            OAuthErrorCode.INVALID_CLIENT,
            "the certificate does not name the URI this client registered with",
            status=401,
        )
    checked = check_assertion_claims(claims, client.client_id, check)
    carried = certificate_npis(certificate.leaf)
    if carried and client.npi not in carried:
        raise OAuthError(
            OAuthErrorCode.INVALID_CLIENT,
            "the certificate carries another organization's NPI than this client's",
            status=401,
        )
    if (
        _npi_of(claims.get("extensions"), error=OAuthErrorCode.INVALID_GRANT, status=400)
        != client.npi
    ):
        raise OAuthError(
            OAuthErrorCode.INVALID_GRANT,
            f"extensions.{B2B_EXTENSION}.organization_id names another organization than "
            "the one this client registered for",
        )
    return checked


def _signed(identity: ServerIdentity, claims: dict[str, Any]) -> str:
    """A JWT signed with the certificate's key, its chain in ``x5c``."""
    x5c = [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
        for c in identity.chain
    ]
    key = (
        ECKey.import_key(identity.key)
        if isinstance(identity.key, ec.EllipticCurvePrivateKey)
        else RSAKey.import_key(identity.key)
    )
    header = {"alg": identity.algorithm, "x5c": x5c}
    return jwt.encode(
        header, claims, key, algorithms=[identity.algorithm], registry=CERTIFICATE_HEADERS
    )


def signed_metadata(
    identity: ServerIdentity,
    *,
    issuer: str,
    endpoints: dict[str, str],
    now: datetime,
    token_id: str,
) -> str:
    """The ``signed_metadata`` JWT (FAST Security IG): the endpoints, signed with the
    server's certificate key, ``x5c`` its chain, valid for a day (FAST allows a year)."""
    issued = int(now.timestamp())
    claims = {
        "iss": issuer,
        "sub": issuer,
        "iat": issued,
        "exp": issued + 24 * 3600,
        "jti": token_id,
        **endpoints,
    }
    return _signed(identity, claims)


def read_signed_metadata(
    token: str, trust: TrustAnchors, *, fhir_base: str, now: datetime, skew: timedelta
) -> dict[str, Any]:
    """A partner's ``signed_metadata``, checked as FAST asks of a client: a certificate
    that chains to our trust anchors and names the FHIR base we asked (``iss``), not
    expired. The claims (its endpoints); OAuthError saying what does not hold."""
    claims, certificate = _signed_by_certificate(
        token, trust, now=now, error=OAuthErrorCode.INVALID_SIGNED_METADATA, status=422
    )
    issuer = claims.get("iss")
    if issuer != fhir_base or claims.get("sub") != issuer:
        raise OAuthError(
            OAuthErrorCode.INVALID_SIGNED_METADATA,
            "iss and sub must be the FHIR base URL the metadata was read from",
            status=422,
        )
    if issuer not in certificate.uris:
        raise OAuthError(
            OAuthErrorCode.INVALID_SIGNED_METADATA,
            "the certificate does not name the FHIR base URL (subject alternative name)",
            status=422,
        )
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires < (now - skew).timestamp():
        raise OAuthError(
            OAuthErrorCode.INVALID_SIGNED_METADATA, "the signed metadata has expired", status=422
        )
    return claims


def _b2b(npi: str, organization_name: str) -> dict[str, Any]:
    return {
        B2B_EXTENSION: {
            "version": "1",
            "organization_id": f"{NPI_SYSTEMS[0]}|{npi}",
            "organization_name": organization_name,
            "purpose_of_use": [_PURPOSE_OF_USE],
        }
    }


def software_statement(
    identity: ServerIdentity, issued: OurJwt, *, organization: B2bOrganization, scope: str
) -> str:
    """Our software statement (``issued``: by our client URI, for a partner's UDAP
    registration endpoint) for B2B client credentials, naming our organization as every
    token request will, by its name as the client's."""
    client_name = organization.name
    claims = {
        **issued.claims(),
        "client_name": client_name,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": scope,
        "extensions": _b2b(organization.npi, client_name),
    }
    return _signed(identity, claims)


def b2b_assertion(identity: ServerIdentity, issued: OurJwt, organization: B2bOrganization) -> str:
    """Our UDAP authentication JWT (``issued``: by our client id at the partner, for its token
    endpoint), with the B2B authorization extension naming our organization."""
    claims = {**issued.claims(), "extensions": _b2b(organization.npi, organization.name)}
    return _signed(identity, claims)
