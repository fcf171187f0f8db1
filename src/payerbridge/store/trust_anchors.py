"""The UDAP trust an operator configures: the certificate authorities whose clients may
register (PEM files) and their certificate revocation lists (PEM or DER files), read at
start; a refreshed list takes effect when the servers restart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from payerbridge.errors import InvalidInput, Issue
from payerbridge.security.model import ServerIdentity, TrustAnchors

__all__ = ["load_server_identity", "load_trust_anchors"]


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"the UDAP trust anchor file {path} cannot be read as PEM certificates",
            issues=[Issue(f"{path}: {type(exc).__name__}", "udap_trust_anchors")],
        ) from exc


def _revocation_list(path: Path) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"the revocation list {path} cannot be read (PEM or DER)",
            issues=[Issue(f"{path}: {type(exc).__name__}", "udap_revocation_lists")],
        ) from exc


def load_trust_anchors(anchors: Sequence[Path], revocations: Sequence[Path]) -> TrustAnchors:
    return TrustAnchors(
        anchors=tuple(c for path in anchors for c in _certificates(path)),
        revocations=tuple(_revocation_list(path) for path in revocations),
    )


def load_server_identity(certificate: Path | None, key: Path | None) -> ServerIdentity | None:
    """Our UDAP certificate chain and its private key (PEM files), when configured."""
    if certificate is None or key is None:
        return None
    chain = _certificates(certificate)
    try:
        private = load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(
            f"the UDAP certificate key {key} cannot be read as an unencrypted PEM key",
            issues=[Issue(f"{key}: {type(exc).__name__}", "udap_certificate_key")],
        ) from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidInput("the UDAP certificate key must be an EC or RSA key")
    return ServerIdentity(tuple(chain), private)
