"""A partner payer as we know it (pure); the capability-based directory grows here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from payerbridge.errors import InvalidInput, Issue
from payerbridge.npi import is_valid_npi
from payerbridge.types import PartnerId

__all__ = ["ApiClient", "Organization", "Partner", "validate_partner"]

_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")


@dataclass(frozen=True)
class Organization:
    """A health plan as consents and Provenance name it: by NPI."""

    name: str
    npi: str
    fhir_base: str | None = None


@dataclass(frozen=True)
class ApiClient:
    """An organization registered to call us (a requesting payer), known by its NPI."""

    client_id: str
    name: str
    npi: str


@dataclass(frozen=True)
class Partner:
    id: PartnerId
    name: str
    npi: str
    base_url: str  # the partner's FHIR base, e.g. https://fhir.oldplan.example/fhir
    # The bearer credential this partner issued to us; a secret (kept out of repr).
    credential: str | None = field(default=None, repr=False, compare=False)

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def organization(self) -> Organization:
        return Organization(self.name, self.npi, self.fhir_base)


def validate_partner(partner: Partner) -> None:
    """Raise InvalidInput naming every field that is wrong."""
    issues = []
    if not _PARTNER_ID.match(partner.id):
        issues.append(Issue("id must be 1-64 lower-case letters, digits or '-'", "id"))
    if not partner.name.strip():
        issues.append(Issue("name is required", "name", "required"))
    if not is_valid_npi(partner.npi):
        issues.append(Issue("npi must be a 10-digit NPI with a valid check digit", "npi"))
    parsed = urlparse(partner.base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        issues.append(
            Issue("base_url must be an absolute http(s) URL of the partner's FHIR base", "base_url")
        )
    if issues:
        raise InvalidInput("the partner registration is not valid", issues=issues)
