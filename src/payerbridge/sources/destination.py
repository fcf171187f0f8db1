"""The plan's FHIR server as a destination: transaction Bundles posted to its base, with
the access token SMART Backend Services gives us (``smart.SmartTokens``, as a source
gets its own), each answer classified once, here (``delivery.model.DestinationAnswer``).

2xx took the Bundle. A transport failure, a timeout, 408, 429 and 5xx are "try again
later" (with the Retry-After it sent). 401 is tried once more with a new token; a second
401, a 403 or a token endpoint that refuses us is our client refused. Any other 4xx is a
refusal: its OperationOutcome's issue codes and the hash of its body are kept, never its
text (it may echo what we sent). Nothing logged names a resource or a member.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from payerbridge.clock import utcnow
from payerbridge.delivery.model import DeliveryReason, DestinationAnswer, outcome_codes
from payerbridge.errors import PartnerAuthRejected, PartnerRejected, PartnerUnavailable
from payerbridge.exchange.calls.retry import retry_after_seconds
from payerbridge.net.addresses import AddressPolicy
from payerbridge.net.transport import AddressRefused, AnswerTooLarge, GuardedTransport, send_bounded
from payerbridge.sources.connection import FHIR_JSON
from payerbridge.sources.smart import SmartClient, SmartTokens, signing_key

__all__ = ["DestinationTarget", "FhirDestination"]

logger = logging.getLogger(__name__)
_ANSWER_LIMIT = 16 * 1024 * 1024
_RETRY = frozenset({408, 429})


@dataclass(frozen=True)
class DestinationTarget:
    """Where a destination is: its id, its FHIR base, the types it takes (None: every
    type) and the longest one post may take."""

    id: str
    base_url: str
    types: frozenset[str] | None = None
    timeout_seconds: float = 30.0


class FhirDestination:
    """One plan FHIR server we write to (``delivery.ports.Destination``)."""

    def __init__(
        self,
        target: DestinationTarget,
        *,
        smart: SmartClient | None = None,
        policy: AddressPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        destination_id = target.id
        self._id, self._base, self._types = (
            destination_id,
            target.base_url.rstrip("/"),
            target.types,
        )
        self._timeout = target.timeout_seconds
        self._client = httpx.Client(
            transport=transport or GuardedTransport(policy or AddressPolicy()),
            headers={"User-Agent": "payerbridge-destination"},
            follow_redirects=False,
        )
        self.tokens = (
            SmartTokens(self._client, source_id=destination_id, base_url=self._base, us=smart)
            if smart is not None
            else None
        )

    @classmethod
    def with_key(
        cls,
        target: DestinationTarget,
        auth: tuple[str, dict[str, Any], str, str | None] | None,
        policy: AddressPolicy,
    ) -> FhirDestination:
        """Built from (client id, private JWK, scope, token URL); ValueError naming what
        is wrong with the key (never the key)."""
        smart = None
        if auth is not None:
            client_id, jwk, scope, token_url = auth
            smart = SmartClient(client_id, signing_key(jwk), scope, token_url)
        return cls(target, smart=smart, policy=policy)

    @property
    def id(self) -> str:
        return self._id

    @property
    def types(self) -> frozenset[str] | None:
        return self._types

    def close(self) -> None:
        self._client.close()

    def post_transaction(self, bundle: dict[str, Any]) -> DestinationAnswer:
        body = orjson.dumps(bundle)
        refused: str | None = None
        try:
            for attempt in (1, 2):
                headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
                if self.tokens is not None:
                    refused = self.tokens.authorization(self._timeout)
                    headers["Authorization"] = refused
                response = self._post(body, headers)
                if response.status_code != 401 or self.tokens is None or attempt == 2:
                    break
                assert refused is not None
                self.tokens.forget(refused)
        except PartnerAuthRejected as exc:
            return DestinationAnswer(
                reason=DeliveryReason.AUTH_REFUSED, status=exc.status, error=exc.text[:300]
            )
        except PartnerUnavailable as exc:
            return DestinationAnswer(retry=True, status=exc.status, error=exc.text[:300])
        except PartnerRejected as exc:
            return DestinationAnswer(
                reason=DeliveryReason.REFUSED, status=exc.status, error=exc.text[:300]
            )
        return self._answer(response, bundle)

    def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        request = self._client.build_request(
            "POST", self._base, content=body, headers=headers, timeout=self._timeout
        )
        try:
            return send_bounded(self._client, request, limit=_ANSWER_LIMIT)
        except AnswerTooLarge as exc:
            raise PartnerUnavailable(
                f"destination '{self._id}' answered more than {exc.limit} bytes"
            ) from exc
        except AddressRefused as exc:
            raise PartnerRejected(f"destination '{self._id}' is not called: {exc}") from exc
        except httpx.HTTPError as exc:
            logger.warning(
                "destination unreachable",
                extra={"destination_id": self._id, "error_type": type(exc).__name__},
            )
            raise PartnerUnavailable(
                f"destination '{self._id}' is unreachable ({type(exc).__name__})"
            ) from exc

    def _answer(self, response: httpx.Response, bundle: dict[str, Any]) -> DestinationAnswer:
        status = response.status_code
        if 200 <= status < 300:
            return DestinationAnswer(written=True, status=status, found=_found(bundle, response))
        text = f"destination '{self._id}' answered HTTP {status}"
        if status in _RETRY or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"), now=utcnow())
            return DestinationAnswer(retry=True, status=status, retry_after=wait, error=text)
        try:
            parsed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            parsed = None
        codes, digest = outcome_codes(parsed, response.content)
        reason = DeliveryReason.AUTH_REFUSED if status in (401, 403) else DeliveryReason.REFUSED
        return DestinationAnswer(
            reason=reason, status=status, issue_codes=codes, outcome_hash=digest, error=text
        )


def _found(bundle: dict[str, Any], response: httpx.Response) -> dict[str, int]:
    """Per type, the conditional creates of ``bundle`` that the transaction-response
    answers ``200`` (the destination held one that agrees: nothing written). Its entries
    answer the request's in order (FHIR R4 transaction); an answer we cannot read that
    way counts as all written, as before we read it."""
    try:
        answered = orjson.loads(response.content).get("entry")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    sent = bundle.get("entry") or []
    if not isinstance(answered, list) or len(answered) != len(sent):
        return {}
    found: dict[str, int] = {}
    for entry, answer in zip(sent, answered, strict=True):
        request = entry.get("request") or {}
        reply = answer.get("response") if isinstance(answer, dict) else None
        status = str(reply.get("status", "")) if isinstance(reply, dict) else ""
        if request.get("method") == "POST" and "ifNoneExist" in request and status[:3] == "200":
            kind = str(entry["resource"]["resourceType"])
            found[kind] = found.get(kind, 0) + 1
    return found
