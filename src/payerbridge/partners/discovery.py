"""A partner's discovery documents, read when an operator registers or re-points it: its
FHIR CapabilityStatement (``{base}/metadata``) and, when we authenticate to it, its SMART
configuration or its UDAP metadata. A partner whose endpoint does not answer them is not
registered or re-pointed.

A UDAP partner's ``signed_metadata`` must chain to our community's trust anchors and
name the base we asked: that is how we know the endpoints we will send our statements
and member data to are the partner's. We then register with it (dynamic client
registration, our software statement signed with our community certificate).

Endpoints stay where the partner is: a SMART configuration whose token endpoint is on
another origin than the FHIR base is recorded as refused in the reading (the route then
says why the partner cannot be called) unless an operator set ``token_url``; UDAP
metadata whose token or registration endpoint is on an origin neither the base nor the
operator's ``token_url`` has is refused, and nothing is registered. Every document is
read through the egress policy's transport and up to ``PARTNER_MAX_DOCUMENT_BYTES``;
``check_endpoints`` judges the addresses a partner's URLs resolve to when an operator
registers it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import httpx

from payerbridge.clock import utcnow
from payerbridge.errors import Issue, PartnerError, UnprocessableRequest
from payerbridge.net.origins import origin, same_origin
from payerbridge.partners.answers import MIB, Outbound
from payerbridge.partners.auth import OurUdapClient, off_origin_token_endpoint
from payerbridge.partners.calls import DocumentSender
from payerbridge.partners.wellknown import fetch_wellknown
from payerbridge.routing.capabilities import read_capabilities
from payerbridge.routing.model import Partner, PartnerAuth
from payerbridge.security.model import OAuthError, TrustAnchors
from payerbridge.security.udap import (
    B2bOrganization,
    OurJwt,
    read_signed_metadata,
    software_statement,
)

__all__ = ["HttpxPartnerDiscovery"]

logger = logging.getLogger(__name__)


class HttpxPartnerDiscovery:
    def __init__(
        self,
        *,
        outbound: Outbound,
        udap: OurUdapClient | None = None,
        trust: TrustAnchors | None = None,
        clock_skew: timedelta = timedelta(seconds=60),
        document_limit: int = 2 * MIB,
    ):
        self._policy = outbound.policy
        self._resolve = outbound.resolver
        self._client = outbound.client()
        self._documents = DocumentSender(self._client, document_limit)
        self._document_limit = document_limit
        self._udap = udap
        self._trust = trust
        self._skew = clock_skew

    def close(self) -> None:
        self._client.close()

    def check_endpoints(self, partner: Partner) -> None:
        """UnprocessableRequest naming each of the partner's URLs (``base_url``,
        ``token_url``) whose host resolves to an address the egress policy refuses, or
        that is plain http outside the networks an operator listed. A name that does not
        resolve yet passes: every connection checks again."""
        issues = []
        for field, url in (("base_url", partner.base_url), ("token_url", partner.token_url)):
            found = origin(url) if url else None
            if found is None:
                continue
            scheme, host, port = found
            try:
                addresses = self._resolve(host.strip("[]"), port)
            except (OSError, UnicodeError):
                continue
            refusals = self._policy.refusals(addresses)
            if refusals:
                issues.append(
                    Issue(
                        f"{field} resolves to an address that is not called ({refusals[0]}); "
                        "partners are called on public addresses only, outside networks an "
                        "operator lists (PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS)",
                        field,
                        "security",
                    )
                )
            elif scheme != "https" and not self._policy.allows_plain_http(addresses):
                issues.append(Issue(f"{field} must be an https:// URL", field, "security"))
        if issues:
            raise UnprocessableRequest(
                f"partner '{partner.id}' was not registered: an endpoint is not called",
                issues=issues,
            )

    def wellknown(self, location: str) -> bytes:
        """A payer's davinci-configuration document, as read (``partners.wellknown``)."""
        return fetch_wellknown(self._client, location, self._document_limit)

    def read(self, partner: Partner) -> dict[str, Any]:
        """What the partner's discovery documents say (the FHIR version, the token and,
        for UDAP, registration endpoints); UnprocessableRequest naming the document that
        could not be read or trusted."""
        metadata = self._document(partner, f"{partner.fhir_base}/metadata", "metadata")
        if metadata.get("resourceType") != "CapabilityStatement":
            raise _unreadable(partner, "metadata", "is not a CapabilityStatement")
        found: dict[str, Any] = {"fhir_version": metadata.get("fhirVersion")}
        named = metadata.get("publisher") or metadata.get("name")
        if isinstance(named, str) and named.strip():
            found["publisher"] = named.strip()[:200]
        if partner.auth is PartnerAuth.SMART:
            smart = self._document(
                partner,
                f"{partner.fhir_base}/.well-known/smart-configuration",
                "smart-configuration",
            )
            token_endpoint = partner.token_url or smart.get("token_endpoint")
            if not isinstance(token_endpoint, str):
                raise _unreadable(partner, "smart-configuration", "names no token_endpoint")
            found["token_endpoint"] = token_endpoint
            if partner.token_url is None:  # the operator's token_url is approved
                refused = off_origin_token_endpoint(partner, token_endpoint)
                if refused is not None:
                    found["refused_endpoints"] = {"token": refused}
        elif partner.auth is PartnerAuth.UDAP:
            found.update(self._udap_endpoints(partner))
        endpoints = {
            name.removesuffix("_endpoint"): found[name]
            for name in ("token_endpoint", "registration_endpoint")
            if isinstance(found.get(name), str)
        }
        found["capabilities"] = read_capabilities(
            metadata,
            at=utcnow(),
            endpoints=endpoints,
            refused=found.get("refused_endpoints"),
        ).to_json()
        return found

    def register(self, partner: Partner, registration_endpoint: str) -> str:
        """Register with a UDAP partner; the client id it gives us. UnprocessableRequest
        with the partner's reason when it refuses."""
        refused = _off_origin(partner, "registration", registration_endpoint)
        if refused is not None:
            raise _refused(partner, refused)
        udap, _ = self._udap_trust(partner)
        statement = software_statement(
            udap.identity,
            OurJwt(udap.client_uri, registration_endpoint, utcnow(), str(uuid.uuid4())),
            organization=B2bOrganization(udap.organization.npi, udap.organization.name),
            scope=partner.scope,
        )
        request = self._client.build_request(
            "POST",
            registration_endpoint,
            json={"software_statement": statement, "udap": "1"},
            headers={"Accept": "application/json"},
        )
        try:
            response = self._send(request, partner, "registration")
        except PartnerError as exc:
            raise _refused(partner, f"could not be used: {exc.text}") from exc
        body = _json_object(response)
        if response.status_code not in (200, 201):
            error = body.get("error") if body else None
            reason = body.get("error_description") if body else None
            said = ": ".join(str(x)[:200] for x in (error, reason) if x)
            raise _refused(partner, f"refused us (HTTP {response.status_code}) {said}".strip())
        client_id = body.get("client_id") if body else None
        if not isinstance(client_id, str) or not client_id.strip():
            raise _refused(partner, "answered without a client_id")
        logger.info("registered with a UDAP partner", extra={"partner_id": partner.id})
        return client_id

    def _udap_trust(self, partner: Partner) -> tuple[OurUdapClient, TrustAnchors]:
        """Who we are to UDAP partners and whom we trust; refused when not configured."""
        if self._udap is None or self._trust is None or not self._trust.anchors:
            text = (
                "UDAP partners need our community certificate and its trust anchors "
                "(PAYERBRIDGE_UDAP_CERTIFICATE, PAYERBRIDGE_UDAP_CERTIFICATE_KEY, "
                "PAYERBRIDGE_UDAP_TRUST_ANCHORS)"
            )
            raise UnprocessableRequest(
                f"partner '{partner.id}' cannot use UDAP: {text}",
                issues=[Issue(text, "auth", "not-supported")],
            )
        return self._udap, self._trust

    def _udap_endpoints(self, partner: Partner) -> dict[str, Any]:
        _, trust = self._udap_trust(partner)
        udap = self._document(partner, f"{partner.fhir_base}/.well-known/udap", "udap")
        signed = udap.get("signed_metadata")
        if not isinstance(signed, str):
            raise _unreadable(partner, "udap", "carries no signed_metadata")
        try:
            claims = read_signed_metadata(
                signed,
                trust,
                fhir_base=partner.fhir_base,
                now=utcnow(),
                skew=self._skew,
            )
        except OAuthError as exc:
            raise _unreadable(partner, "udap", f"signed_metadata: {exc.description}") from exc
        endpoints = {}
        for name in ("token_endpoint", "registration_endpoint"):
            value = claims.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise _unreadable(partner, "udap", f"signed_metadata names no {name}")
            refused = _off_origin(partner, name.removesuffix("_endpoint"), value)
            if refused is not None:
                raise _unreadable(partner, "udap", f"signed_metadata: {refused}")
            endpoints[name] = value
        return endpoints

    def _send(self, request: httpx.Request, partner: Partner, operation: str) -> httpx.Response:
        """The partner's answer to ``request``, read up to the cap of a document; counted
        as a call to the partner (``operation``: the document's name)."""
        return self._documents.send(request, partner, operation, who="it")

    def _document(self, partner: Partner, url: str, name: str) -> dict[str, Any]:
        request = self._client.build_request("GET", url, headers={"Accept": "application/json"})
        try:
            response = self._send(request, partner, name)
        except PartnerError as exc:
            raise _unreadable(partner, name, f"could not be read: {exc.text}") from exc
        if response.status_code != 200:
            raise _unreadable(partner, name, f"answered HTTP {response.status_code}")
        document = _json_object(response)
        if document is None:
            raise _unreadable(partner, name, "is not a JSON object")
        return document


def _off_origin(partner: Partner, name: str, url: str) -> str | None:
    """Why a UDAP partner's ``name`` endpoint is refused: on neither the origin of its
    FHIR base nor that of the token_url an operator set; None when it may be used."""
    approved = [partner.fhir_base, *([partner.token_url] if partner.token_url else [])]
    if any(same_origin(url, other) for other in approved):
        return None
    return (
        f"the {name} endpoint ({url[:200]}) is on another origin than the partner's FHIR "
        "base; nothing is sent there unless an operator approves it by setting token_url "
        "on that origin"
    )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _unreadable(partner: Partner, name: str, why: str) -> UnprocessableRequest:
    text = f"the partner's {name} document at {partner.fhir_base} {why}; nothing was changed"
    return UnprocessableRequest(
        f"partner '{partner.id}' was not registered: {text}",
        issues=[Issue(text, "base_url", "not-found")],
    )


def _refused(partner: Partner, why: str) -> UnprocessableRequest:
    text = f"the partner's UDAP registration endpoint {why}; nothing was changed"
    return UnprocessableRequest(
        f"partner '{partner.id}' was not registered: {text}",
        issues=[Issue(text, "auth", "security")],
    )
