"""Which organization a client acts for, proven rather than claimed (pure; ADR 0026).

Consents name organizations by NPI, so the NPI a client is registered for decides whose
members it may read. A UDAP software statement only *claims* one (FAST's B2B extension,
``organization_id``); what we can check is the certificate the trust community issued.
Neither FAST nor UDAP fixes where a certificate carries an organization's identifier
(FAST leaves the ``organization_id`` URI schemes to the trust community), so our
community profile accepts either of:

- a subject alternative name URI holding the same identifier the B2B extension sends,
  ``http://hl7.org/fhir/sid/us-npi|<npi>`` or ``urn:oid:2.16.840.1.113883.4.6|<npi>``
  (the ``|`` may be percent-encoded as ``%7C``, as a strict URI encoder writes it);
- the X.520 ``organizationIdentifier`` subject attribute (OID 2.5.4.97) in the ETSI EN
  319 412-1 form ``<scheme><country>-<reference>``: ``NPIUS-<npi>``.

A registration whose certificate carries the NPI it claims is bound by the certificate;
one whose certificate carries no NPI waits for an operator to approve the pairing; one
whose certificate carries other NPIs is refused (the community vouched for another
organization). Registering again never changes the NPI.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from payerbridge.errors import OAuthErrorCode
from payerbridge.npi import is_valid_npi
from payerbridge.security.model import (
    ClientKind,
    OAuthError,
    OrganizationEvidence,
    RegisteredClient,
)

__all__ = [
    "CERTIFICATE_VOUCHER",
    "NPI_SYSTEMS",
    "bind_registration",
    "certificate_npis",
    "npi_of_identifier",
]

NPI_SYSTEMS = ("http://hl7.org/fhir/sid/us-npi", "urn:oid:2.16.840.1.113883.4.6")
CERTIFICATE_VOUCHER = "certificate"  # npi_vouched_by when the certificate carries the NPI
_ORGANIZATION_IDENTIFIER_PREFIX = "NPIUS-"


def npi_of_identifier(value: str) -> str | None:
    """The NPI an identifier names (``<NPI system>|<npi>``, ``|`` possibly ``%7C``), or
    None when it names something else or an invalid NPI."""
    for separator in ("|", "%7C", "%7c"):
        system, found, npi = value.rpartition(separator)
        if found:
            return npi if system in NPI_SYSTEMS and is_valid_npi(npi) else None
    return None


def certificate_npis(certificate: x509.Certificate) -> frozenset[str]:
    """The NPIs a certificate carries, by our community profile (module docstring)."""
    npis: set[str] = set()
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        for uri in names.value.get_values_for_type(x509.UniformResourceIdentifier):
            if (npi := npi_of_identifier(uri)) is not None:
                npis.add(npi)
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER):
        value = attribute.value if isinstance(attribute.value, str) else ""
        npi = value.removeprefix(_ORGANIZATION_IDENTIFIER_PREFIX)
        if value.startswith(_ORGANIZATION_IDENTIFIER_PREFIX) and is_valid_npi(npi):
            npis.add(npi)
    return frozenset(npis)


def bind_registration(
    claimed: RegisteredClient,
    known: RegisteredClient | None,
    carried: frozenset[str],
    *,
    now: datetime,
) -> RegisteredClient:
    """The client a UDAP registration stores, with what binds it to its NPI: the
    certificate when it carries the claimed NPI, else what bound the known client, else
    pending. OAuthError when the certificate carries other NPIs, or when registering
    again would change the NPI or take over a client an operator registered."""
    if carried and claimed.npi not in carried:
        raise OAuthError(
            OAuthErrorCode.INVALID_SOFTWARE_STATEMENT,
            "extensions.hl7-b2b.organization_id names an NPI the certificate does not "
            "carry; the certificate was issued for another organization",
        )
    if known is not None:
        if known.kind is not ClientKind.UDAP:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT_METADATA,
                "this client id belongs to a client an operator registered; it cannot be "
                "registered by software statement",
            )
        if known.npi != claimed.npi:
            raise OAuthError(
                OAuthErrorCode.INVALID_CLIENT_METADATA,
                "registering again cannot change the organization (NPI) this client is "
                "registered for; register another client URI for another organization",
            )
    if claimed.npi in carried:
        return replace(
            claimed,
            npi_evidence=OrganizationEvidence.CERTIFICATE,
            npi_vouched_by=CERTIFICATE_VOUCHER,
            npi_vouched_at=now,
        )
    if known is not None:
        return replace(
            claimed,
            npi_evidence=known.npi_evidence,
            npi_vouched_by=known.npi_vouched_by,
            npi_vouched_at=known.npi_vouched_at,
        )
    return replace(
        claimed, npi_evidence=OrganizationEvidence.PENDING, npi_vouched_by=None, npi_vouched_at=None
    )
