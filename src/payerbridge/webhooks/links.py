"""The link a finished exchange's webhook carries to what it received (pure, ADR 0052).

An integration engine that does not speak FHIR paging well is told, in the event that an
exchange ended with data (``completed``, ``partial``, ``conflict``), where the received
record is: ``/exchanges/{id}/received?expires=<unix seconds>&signature=<hex>``. The link
is signed by the platform (HMAC-SHA256 over the exchange id and the expiry, with a key
derived from the deployment's secret), so it names that exchange only and stops working
at its expiry; it is readable by the plan's own organization only (the route checks the
caller's proven NPI, then sends it to the member's ``$everything``, where every read is
decided and audited). The link is made when the delivery is posted, so a retried
delivery carries a link that lasts its whole lifetime from then.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson

from payerbridge.errors import Forbidden, Gone, Issue
from payerbridge.exchange.model import DATA_ENDS
from payerbridge.timestamps import utc_iso

__all__ = ["ReceivedLinks", "link_key", "with_received_link"]

_ENDS_WITH_DATA = frozenset(state.value for state in DATA_ENDS)  # as the event says them
_HEX = re.compile(r"[0-9a-f]{64}")


def link_key(secret: bytes) -> bytes:
    """The links' key, derived from the deployment's secret: never the secret itself."""
    return hmac.digest(secret, b"payerbridge/received-links/v1", "sha256")


@dataclass(frozen=True)
class ReceivedLinks:
    key: bytes
    lifetime: timedelta
    base_url: str  # where the platform is reached, without a trailing /

    def link(self, exchange_id: str, now: datetime) -> tuple[str, datetime]:
        """The signed link to the exchange's received record, and when it expires."""
        expires = int((now + self.lifetime).timestamp())
        query = urlencode({"expires": expires, "signature": self._sign(exchange_id, expires)})
        href = f"{self.base_url}/exchanges/{exchange_id}/received?{query}"
        return href, datetime.fromtimestamp(expires, UTC)

    def check(self, exchange_id: str, expires: str, signature: str, now: datetime) -> None:
        """Forbidden unless the link was signed here for this exchange; Gone once it has
        expired (the signature first: an expiry nobody signed says nothing)."""
        if not (
            _HEX.fullmatch(signature)
            and expires.isascii()
            and expires.isdigit()
            and len(expires) <= 12
            and hmac.compare_digest(self._sign(exchange_id, int(expires)), signature)
        ):
            raise Forbidden(
                "the link is not one this platform signed for this exchange",
                issues=[Issue("use the link as the webhook gave it", "signature", "forbidden")],
            )
        if now.timestamp() > int(expires):
            raise Gone(
                "the link has expired; read the member's record with $everything",
                issues=[Issue("the link has expired", "expires", "expired")],
            )

    def _sign(self, exchange_id: str, expires: int) -> str:
        message = f"{exchange_id}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


def with_received_link(body: bytes, links: ReceivedLinks, now: datetime) -> bytes:
    """The event ``body`` with the link to what the exchange received when it ended with
    data; any other event as it was."""
    event: dict[str, Any] = orjson.loads(body)
    exchange = event.get("exchange") or {}
    if exchange.get("state") not in _ENDS_WITH_DATA:
        return body
    href, expires = links.link(str(exchange["id"]), now)
    exchange["received"] = {"href": href, "expires": utc_iso(expires)}
    return orjson.dumps(event)
