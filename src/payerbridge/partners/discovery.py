"""A partner's discovery documents, read when an operator re-points it: its FHIR
CapabilityStatement (``{base}/metadata``) and, when we authenticate to it, its SMART
configuration. A partner whose new endpoint does not answer them is not re-pointed."""

from __future__ import annotations

from typing import Any

import httpx

from payerbridge.errors import Issue, UnprocessableRequest
from payerbridge.routing.model import Partner

__all__ = ["HttpxPartnerDiscovery"]


class HttpxPartnerDiscovery:
    def __init__(self, *, timeout_seconds: float, transport: httpx.BaseTransport | None = None):
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds), transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def read(self, partner: Partner) -> dict[str, Any]:
        """What the partner's discovery documents say (the FHIR version, the token
        endpoint); UnprocessableRequest naming the document that could not be read."""
        metadata = self._document(partner, f"{partner.fhir_base}/metadata", "metadata")
        if metadata.get("resourceType") != "CapabilityStatement":
            raise _unreadable(partner, "metadata", "is not a CapabilityStatement")
        found: dict[str, Any] = {"fhir_version": metadata.get("fhirVersion")}
        if partner.client_id is not None:
            smart = self._document(
                partner,
                f"{partner.fhir_base}/.well-known/smart-configuration",
                "smart-configuration",
            )
            token_endpoint = partner.token_url or smart.get("token_endpoint")
            if not isinstance(token_endpoint, str):
                raise _unreadable(partner, "smart-configuration", "names no token_endpoint")
            found["token_endpoint"] = token_endpoint
        return found

    def _document(self, partner: Partner, url: str, name: str) -> dict[str, Any]:
        try:
            response = self._client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unreadable(partner, name, f"is unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise _unreadable(partner, name, f"answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise _unreadable(partner, name, "is not JSON") from exc
        if not isinstance(document, dict):
            raise _unreadable(partner, name, "is not a JSON object")
        return document


def _unreadable(partner: Partner, name: str, why: str) -> UnprocessableRequest:
    text = f"the partner's {name} at its new endpoint {why}; nothing was changed"
    return UnprocessableRequest(
        f"partner '{partner.id}' was not re-pointed: {text}",
        issues=[Issue(text, "base_url", "not-found")],
    )
