"""A real certificate chain made in the test: a root CA (the trust anchor), a client
certificate with its URI (and, as our community profile has it, the organization's NPI
as a SAN URI or an ``organizationIdentifier`` subject attribute), and revocation lists,
as a UDAP community would issue them."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["NPI_SYSTEM", "CertificateAuthority", "Issued"]

NOW = datetime.now(UTC)


NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def _name(common_name: str, organization_identifier: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Community"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if organization_identifier is not None:
        attributes.append(
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, organization_identifier)
        )
    return x509.Name(attributes)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: list[x509.Certificate]

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """The certificate and its key as PEM files (the key 0600): ``(cert, key)``."""
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_bytes(self.certificate.public_bytes(Encoding.PEM))
        key.write_bytes(self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        key.chmod(0o600)
        return cert, key

    @property
    def x5c(self) -> list[str]:
        return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in self.chain]


class CertificateAuthority:
    def __init__(self, name: str = "Test Root CA") -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())
        public = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=30))
            .not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA384())
        )
        self.revoked: list[int] = []

    def issue(
        self,
        uri: str,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        npi: str | None = None,
        more_uris: Sequence[str] = (),
        organization_identifier: str | None = None,
    ) -> Issued:
        """A client certificate naming ``uri``; with ``npi`` it carries the organization's
        NPI as the SAN URI ``http://hl7.org/fhir/sid/us-npi|<npi>``; ``more_uris`` adds
        SAN URIs as given, ``organization_identifier`` the subject attribute (2.5.4.97)."""
        key = ec.generate_private_key(ec.SECP384R1())
        uris = [uri, *([f"{NPI_SYSTEM}|{npi}"] if npi else []), *more_uris]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(uri, organization_identifier))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - timedelta(days=1))
            .not_valid_after(not_after or NOW + timedelta(days=365))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA384())
        )
        return Issued(key, certificate, [certificate])

    def issue_server(self, address: str = "127.0.0.1") -> Issued:
        """A TLS server certificate for ``address``."""
        key = ec.generate_private_key(ec.SECP384R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(address))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA384())
        )
        return Issued(key, certificate, [certificate])

    def revoke(self, issued: Issued) -> None:
        self.revoked.append(issued.certificate.serial_number)

    def crl(self) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(NOW - timedelta(hours=1))
            .next_update(NOW + timedelta(days=7))
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(NOW - timedelta(minutes=5))
                .build()
            )
        return builder.sign(self.key, hashes.SHA384())

    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)
