"""A client registration checked (pure): what an operator gives for a SMART client."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from payerbridge.errors import InvalidInput, Issue
from payerbridge.npi import is_valid_npi
from payerbridge.security.assertions import check_key_set
from payerbridge.security.model import (
    ClientKeys,
    ClientKind,
    OAuthError,
    RegisteredClient,
    parse_scopes,
)
from payerbridge.types import ClientId

__all__ = ["smart_client"]

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")


def smart_client(
    client_id: str, name: str, npi: str, scope: str, keys: ClientKeys
) -> RegisteredClient:
    """The client these fields describe, or InvalidInput naming every one that is wrong."""
    jwks, jwks_url = keys.jwks, keys.jwks_url
    issues = []
    if not _CLIENT_ID.match(client_id):
        issues.append(Issue("id must be 1-200 letters, digits, '.', '_' or '-'", "id"))
    if not name.strip():
        issues.append(Issue("name is required", "name", "required"))
    if not is_valid_npi(npi):
        issues.append(Issue("npi must be a 10-digit NPI with a valid check digit", "npi"))
    if (jwks is None) == (jwks_url is None):
        issues.append(Issue("give exactly one of jwks and jwks_url", "jwks", "required"))
    if jwks_url is not None and urlparse(jwks_url).scheme not in ("https", "http"):
        issues.append(Issue("jwks_url must be an absolute http(s) URL", "jwks_url"))
    if jwks is not None and (problem := check_key_set(jwks)):
        issues.append(Issue(problem, "jwks"))
    scopes: frozenset[str] = frozenset()
    try:
        scopes = parse_scopes(scope)
    except OAuthError as exc:
        issues.append(Issue(exc.description, "scope"))
    if not scopes and not issues:
        issues.append(Issue("scope must name at least one scope", "scope", "required"))
    if issues:
        raise InvalidInput("the client registration is not valid", issues=issues)
    return RegisteredClient(
        client_id=ClientId(client_id),
        name=name.strip(),
        npi=npi,
        scopes=scopes,
        kind=ClientKind.SMART,
        jwks=jwks,
        jwks_url=jwks_url,
    )
