"""Access tokens from partners' authorization servers: a fresh assertion for each token
request, the token cached until shortly before it expires, dropped when the partner
answers 401. With SMART Backend Services the assertion is signed with our client key;
with UDAP B2B, with our community certificate's key, its chain in ``x5c`` and our
organization in the B2B extension.

The token endpoint is the partner's registered ``token_url`` (set by an operator, or for
UDAP the one its signed metadata named when we registered), else the one its
``{base}/.well-known/smart-configuration`` names, which must then be on the origin of
the partner's FHIR base (scheme, host and port): a configuration that names another
origin is refused (PartnerRejected, not retried) and nothing is posted there; an
operator approves another origin by setting ``token_url``. Nothing but the assertion
(bound to that endpoint by ``aud`` and used once) is sent to the token endpoint.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from payerbridge.clock import utcnow
from payerbridge.errors import PartnerAuthRejected, PartnerRejected, PartnerUnavailable
from payerbridge.net.origins import same_origin
from payerbridge.net.transport import oauth_error
from payerbridge.partners.answers import MIB
from payerbridge.partners.calls import DocumentSender
from payerbridge.routing.model import Organization, Partner, PartnerAuth
from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE, assertion_claims
from payerbridge.security.model import ServerIdentity
from payerbridge.security.udap import B2bOrganization, OurJwt, b2b_assertion

__all__ = [
    "OurUdapClient",
    "PartnerTokenSource",
    "client_assertion",
    "off_origin_token_endpoint",
    "token_form",
]

logger = logging.getLogger(__name__)

_EARLY_SECONDS = 30  # a token this close to expiry is renewed before use


@dataclass(frozen=True)
class OurUdapClient:
    """Who we are to UDAP partners: our community certificate, the URI we register
    under (one the certificate names) and our organization."""

    identity: ServerIdentity
    client_uri: str
    organization: Organization


def off_origin_token_endpoint(partner: Partner, token_endpoint: str) -> str | None:
    """Why a token endpoint the partner's SMART configuration names is refused (it is not
    on the origin of the partner's FHIR base); None when it is."""
    if same_origin(token_endpoint, partner.fhir_base):
        return None
    return (
        f"its SMART configuration names a token endpoint ({token_endpoint[:200]}) on "
        "another origin than its FHIR base; no assertion is sent there. An operator who "
        "knows it is the partner's approves it by setting the partner's token_url "
        "(`payerbridge partners add --token-url`)"
    )


class PartnerTokenSource:
    def __init__(
        self,
        client: httpx.Client,
        key: ECKey,
        udap: OurUdapClient | None = None,
        *,
        document_limit: int = 2 * MIB,
    ) -> None:
        self._client = client
        self._key = key
        self._udap = udap
        self._documents = DocumentSender(client, document_limit)
        # By the partner as registered when the token was got: a partner re-pointed by an
        # operator (base URL, token endpoint, client id, scope) never gets the old token.
        self._tokens: dict[tuple[object, ...], tuple[str, float]] = {}
        self._token_urls: dict[tuple[object, ...], str] = {}
        self._lock = threading.Lock()

    def authorization(self, partner: Partner) -> str | None:
        """The ``Authorization`` header value for a call to ``partner``; None when we are
        not registered with it (a partner that asks no token)."""
        if partner.client_id is None:
            return None
        with self._lock:
            cached = self._tokens.get(_key(partner))
        if cached is not None and cached[1] - _EARLY_SECONDS > utcnow().timestamp():
            return f"Bearer {cached[0]}"
        return f"Bearer {self.renew(partner)}"

    def renew(self, partner: Partner) -> str | None:
        """A new token from the partner's token endpoint, kept for the next call (a call
        whose cached token is spent; a scheduled check: the endpoint and our credentials
        still work); None when we are not registered with it."""
        if partner.client_id is None:
            return None
        token, expires_at = self._request_token(partner, partner.client_id)
        with self._lock:
            self._tokens[_key(partner)] = (token, expires_at)
        return token

    def forget(self, partner: Partner) -> None:
        """Drop the cached token (the partner refused it); the next call gets a new one."""
        with self._lock:
            self._tokens.pop(_key(partner), None)
            self._token_urls.pop(_key(partner), None)

    def _request_token(self, partner: Partner, client_id: str) -> tuple[str, float]:
        token_url = self._token_url(partner)
        started = utcnow().timestamp()  # tokens expire by the partner's clock
        response = self._post(partner, token_url, self._form(partner, client_id, token_url))
        if response.status_code in (400, 401):
            raise PartnerAuthRejected(
                f"partner '{partner.id}' refused our token request ({oauth_error(response)})",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise PartnerUnavailable(
                f"partner '{partner.id}' token endpoint answered HTTP {response.status_code}",
                status=response.status_code,
            )
        body = _json(response, partner)
        token, expires_in = body.get("access_token"), body.get("expires_in", 300)
        if not isinstance(token, str) or not isinstance(expires_in, int | float):
            raise PartnerRejected(f"partner '{partner.id}' token response has no access_token")
        logger.info("partner token obtained", extra={"partner_id": partner.id})
        return token, started + float(expires_in)

    def _form(self, partner: Partner, client_id: str, token_url: str) -> dict[str, str]:
        if partner.auth is not PartnerAuth.UDAP:
            return token_form(self._key, client_id, token_url, partner.scope)
        if self._udap is None:
            raise PartnerAuthRejected(
                f"partner '{partner.id}' is registered for UDAP, and this instance has no "
                "UDAP certificate configured (PAYERBRIDGE_UDAP_CERTIFICATE)"
            )
        organization = self._udap.organization
        assertion = b2b_assertion(
            self._udap.identity,
            OurJwt(client_id, token_url, utcnow(), str(uuid.uuid4())),
            B2bOrganization(organization.npi, organization.name),
        )
        return _token_request(assertion, partner.scope, udap="1")

    def _token_url(self, partner: Partner) -> str:
        if partner.token_url is not None:
            return partner.token_url
        with self._lock:
            known = self._token_urls.get(_key(partner))
        if known is not None:
            return known
        request = self._client.build_request(
            "GET",
            f"{partner.fhir_base}/.well-known/smart-configuration",
            headers={"Accept": "application/json"},
        )
        response = self._documents.send(
            request,
            partner,
            "smart-configuration",
            who=f"partner '{partner.id}' SMART configuration",
        )
        if response.status_code != 200:
            raise PartnerUnavailable(
                f"partner '{partner.id}' SMART configuration answered HTTP {response.status_code}",
                status=response.status_code,
            )
        token_url = _json(response, partner).get("token_endpoint")
        if not isinstance(token_url, str) or not token_url.startswith(("https://", "http://")):
            raise PartnerRejected(
                f"partner '{partner.id}' SMART configuration names no token_endpoint"
            )
        refused = off_origin_token_endpoint(partner, token_url)
        if refused is not None:
            logger.warning("partner token endpoint refused", extra={"partner_id": partner.id})
            raise PartnerRejected(f"partner '{partner.id}' is not asked for a token: {refused}")
        with self._lock:
            self._token_urls[_key(partner)] = token_url
        return token_url

    def _post(self, partner: Partner, url: str, form: dict[str, str]) -> httpx.Response:
        request = self._client.build_request(
            "POST", url, data=form, headers={"Accept": "application/json"}
        )
        return self._documents.send(
            request, partner, "token", who=f"partner '{partner.id}' token endpoint"
        )


def _key(partner: Partner) -> tuple[object, ...]:
    return (partner.id, partner.fhir_base, partner.token_url, partner.client_id, partner.scope)


def client_assertion(key: ECKey, client_id: str, token_url: str) -> str:
    """A SMART Backend Services assertion: ours, for ``token_url``, used once."""
    claims = assertion_claims(client_id, token_url, now=utcnow(), token_id=str(uuid.uuid4()))
    header = {"alg": "ES384", "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=["ES384"])


def token_form(key: ECKey, client_id: str, token_url: str, scope: str) -> dict[str, str]:
    """The body of a ``client_credentials`` token request with a fresh assertion."""
    return _token_request(client_assertion(key, client_id, token_url), scope)


def _token_request(assertion: str, scope: str, **more: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        **more,
    }


def _json(response: httpx.Response, partner: Partner) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise PartnerRejected(f"partner '{partner.id}' answered with something not JSON") from exc
    if not isinstance(body, dict):
        raise PartnerRejected(f"partner '{partner.id}' answered with something not a JSON object")
    return body
