"""X.509 trust for UDAP (pure: the anchors, revocation lists and time are given).

A client's certificate chain (the ``x5c`` header of its JWTs) must lead to one of the
trust anchors the operator configured, be within its validity period, name the
client's URI among its subject alternative names, and no certificate of it may be on a
revocation list its issuer signed. Path building and the signature, validity and
extension checks are cryptography's (``x509.verification``, RFC 5280 with the Web PKI
profile for clients); revocation is checked here against the CRLs given, since the
library does not fetch or read them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from payerbridge.errors import CertificateRejected
from payerbridge.security.model import TrustAnchors

__all__ = [
    "CertificateRejected",
    "VerifiedCertificate",
    "certificate_chain",
    "certificate_thumbprint",
    "verify_certificate_chain",
]


@dataclass(frozen=True)
class VerifiedCertificate:
    leaf: x509.Certificate
    uris: tuple[str, ...]  # the leaf's subject alternative name URIs
    thumbprint: str  # base64url SHA-256 of the leaf (RFC 8705 x5t#S256)


def certificate_thumbprint(der: bytes) -> str:
    """RFC 8705 ``x5t#S256``: base64url SHA-256 of the certificate's DER, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def certificate_chain(x5c: object) -> list[x509.Certificate]:
    """The certificates of a JWS ``x5c`` header (standard base64 DER, leaf first)."""
    if not isinstance(x5c, list) or not x5c or len(x5c) > 10:
        raise CertificateRejected("x5c must list the certificate chain, leaf first")
    chain = []
    for entry in x5c:
        try:
            chain.append(x509.load_der_x509_certificate(base64.b64decode(entry, validate=True)))
        except (TypeError, ValueError, binascii.Error) as exc:
            raise CertificateRejected("an x5c entry is not a base64 DER certificate") from exc
    return chain


def _revoked(certificate: x509.Certificate, issuer: x509.Certificate, trust: TrustAnchors) -> bool:
    for crl in trust.revocations:
        if crl.issuer != issuer.subject:
            continue
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            continue  # a list the issuer did not sign says nothing
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            return True
    return False


def verify_certificate_chain(
    chain: Sequence[x509.Certificate], trust: TrustAnchors, *, now: datetime
) -> VerifiedCertificate:
    if not trust.anchors:
        raise CertificateRejected("this server trusts no certificate authority for UDAP")
    leaf, intermediates = chain[0], list(chain[1:])
    verifier = PolicyBuilder().store(Store(list(trust.anchors))).time(now).build_client_verifier()
    try:
        verified = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        if leaf.not_valid_after_utc < now or leaf.not_valid_before_utc > now:
            raise CertificateRejected("the client certificate is expired or not yet valid") from exc
        raise CertificateRejected(
            "the certificate chain does not lead to a trust anchor this server accepts"
        ) from exc
    path = verified.chain
    for certificate, issuer in zip(path, path[1:], strict=False):
        if _revoked(certificate, issuer, trust):
            raise CertificateRejected("a certificate of the chain is revoked")
    uris = tuple(
        name.value
        for name in (verified.subjects or ())
        if isinstance(name, x509.UniformResourceIdentifier)
    )
    thumbprint = certificate_thumbprint(leaf.public_bytes(Encoding.DER))
    return VerifiedCertificate(leaf, uris, thumbprint)
