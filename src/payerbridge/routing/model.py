"""A partner payer as we know it (pure); the capability-based directory grows here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlparse

from payerbridge.errors import InvalidInput, Issue
from payerbridge.net.origins import has_userinfo
from payerbridge.npi import is_valid_npi
from payerbridge.routing.operations import ACTIVE, Operations
from payerbridge.types import PartnerId

__all__ = [
    "DEFAULT_PARTNER_SCOPE",
    "Organization",
    "Partner",
    "PartnerAuth",
    "repointed",
    "validate_partner",
]

_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")

# What we ask a partner's authorization server for: its FHIR reads and $member-match.
DEFAULT_PARTNER_SCOPE = (
    "system/*.rs http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
)


@dataclass(frozen=True)
class Organization:
    """A health plan as consents and Provenance name it: by NPI."""

    name: str
    npi: str
    fhir_base: str | None = None


class PartnerAuth(StrEnum):
    """How we get a token from a partner's authorization server."""

    NONE = "none"  # the partner asks no token
    SMART = "smart"  # SMART Backend Services: our client id there, our key's assertions
    UDAP = "udap"  # UDAP B2B: registered there with our community certificate


@dataclass(frozen=True)
class Partner:
    id: PartnerId
    name: str
    npi: str
    base_url: str  # the partner's FHIR base, e.g. https://fhir.oldplan.example/fhir
    # Our client id at the partner's authorization server; None with SMART: the partner
    # asks no token; None with UDAP: not registered there yet. The key we sign with is
    # ours, never stored here.
    client_id: str | None = None
    # Its token endpoint; None: read from {base}/.well-known/smart-configuration.
    token_url: str | None = None
    scope: str = DEFAULT_PARTNER_SCOPE
    auth: PartnerAuth = PartnerAuth.NONE
    # Set by operators apart from the registration (suspension, maintenance windows).
    operations: Operations = ACTIVE

    def __post_init__(self) -> None:
        # A client id means we authenticate: with SMART unless UDAP was asked for.
        if self.auth is PartnerAuth.NONE and self.client_id is not None:
            object.__setattr__(self, "auth", PartnerAuth.SMART)

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def organization(self) -> Organization:
        return Organization(self.name, self.npi, self.fhir_base)


def repointed(before: Partner, after: Partner) -> bool:
    """Whether an update changes where we call or who we say we are there."""
    fields = ("base_url", "npi", "client_id", "token_url", "auth")
    return any(getattr(before, name) != getattr(after, name) for name in fields)


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
    if partner.token_url is not None:
        token = urlparse(partner.token_url)
        if token.scheme not in ("http", "https") or not token.netloc:
            issues.append(Issue("token_url must be an absolute http(s) URL", "token_url"))
    issues.extend(_credentials_in(("base_url", partner.base_url), ("token_url", partner.token_url)))
    if partner.client_id is not None and not partner.client_id.strip():
        issues.append(Issue("client_id must not be blank", "client_id"))
    if partner.auth is PartnerAuth.NONE and partner.token_url is not None:
        issues.append(Issue("token_url needs a client_id (or auth 'udap')", "token_url"))
    if not partner.scope.split():
        issues.append(Issue("scope must name at least one scope", "scope", "required"))
    if issues:
        raise InvalidInput("the partner registration is not valid", issues=issues)


def _credentials_in(*fields: tuple[str, str | None]) -> list[Issue]:
    """A URL with ``user:password@`` in it is refused: its credentials would go as Basic
    auth to whoever answers there (ADR 0046)."""
    return [
        Issue(
            f"{name} must not carry a user name or password (user:password@ before the "
            "host): they would be sent to the partner as Basic auth. Give the host alone; "
            "we authenticate with client_id and our key (SMART) or UDAP",
            name,
            "value",
        )
        for name, url in fields
        if url is not None and has_userinfo(url)
    ]
