"""The partner client over httpx: HRex ``$member-match`` and PDex ``$everything``.

Turns HTTP outcomes into our errors: 422 with ``not-found`` / ``multiple-matches`` into
NoMatch / AmbiguousMatch, other 422s into ConsentDenied (HRex mm-11), other 4xx into
PartnerRejected, 5xx and transport failures into PartnerUnavailable. Bodies are never
logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson

from payerbridge.errors import (
    AmbiguousMatch,
    ConsentDenied,
    NoMatch,
    PartnerRejected,
    PartnerUnavailable,
)
from payerbridge.fhir.member_match import MemberMatchResult, parse_member_match_response
from payerbridge.routing.model import Partner

__all__ = ["HttpxPartnerClient"]

logger = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"


def _outcome_codes(response: httpx.Response) -> list[str]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    return [str(issue.get("code")) for issue in body.get("issue") or [] if isinstance(issue, dict)]


def _outcome_text(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
        texts = [
            ((i.get("details") or {}).get("text") or i.get("diagnostics") or "")
            for i in body.get("issue") or []
        ]
        return "; ".join(t for t in texts if t)[:500] or f"HTTP {response.status_code}"
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP {response.status_code}"


class HttpxPartnerClient:
    def __init__(
        self,
        *,
        timeout_seconds: float,
        user_agent: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": FHIR_JSON},
        )

    def close(self) -> None:
        self._client.close()

    def _send(
        self,
        partner: Partner,
        method: str,
        url: str,
        *,
        idempotency_key: str,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"X-Request-ID": idempotency_key, "Idempotency-Key": idempotency_key}
        content = None
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
            content = orjson.dumps(body)
        started = time.perf_counter()
        try:
            response = self._client.request(method, url, headers=headers, content=content)
        except httpx.HTTPError as exc:
            logger.warning(
                "partner unreachable",
                extra={"partner_id": partner.id, "error_type": type(exc).__name__},
            )
            raise PartnerUnavailable(
                f"partner '{partner.id}' is unreachable ({type(exc).__name__})"
            ) from exc
        logger.info(
            "partner call",
            extra={
                "partner_id": partner.id,
                "method": method,
                "status": response.status_code,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        if response.status_code >= 500 or response.status_code == 429:
            raise PartnerUnavailable(
                f"partner '{partner.id}' answered HTTP {response.status_code}",
                status=response.status_code,
            )
        return response

    def member_match(
        self, partner: Partner, parameters: dict[str, Any], *, idempotency_key: str
    ) -> MemberMatchResult:
        response = self._send(
            partner,
            "POST",
            f"{partner.fhir_base}/Patient/$member-match",
            idempotency_key=idempotency_key,
            body=parameters,
        )
        if response.status_code == 422:
            codes = _outcome_codes(response)
            text = _outcome_text(response)
            if "multiple-matches" in codes:
                raise AmbiguousMatch(text)
            if "not-found" in codes:
                raise NoMatch(text)
            raise ConsentDenied(text)
        if response.status_code != 200:
            raise PartnerRejected(
                f"partner '{partner.id}' rejected $member-match: {_outcome_text(response)}",
                status=response.status_code,
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise PartnerRejected(
                "the partner's $member-match response is not JSON", status=response.status_code
            ) from exc
        return parse_member_match_response(body)

    def everything(self, partner: Partner, member_ref: str, *, idempotency_key: str) -> bytes:
        url = member_ref if member_ref.startswith("http") else f"{partner.fhir_base}/{member_ref}"
        response = self._send(partner, "GET", f"{url}/$everything", idempotency_key=idempotency_key)
        if response.status_code != 200:
            raise PartnerRejected(
                f"partner '{partner.id}' rejected $everything: {_outcome_text(response)}",
                status=response.status_code,
            )
        return response.content
