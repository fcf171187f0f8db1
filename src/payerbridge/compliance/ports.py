"""The compliance room's ports: what its stores need of the rules and of the exchanges'
kept requests, declared here so that a store reads them without running the rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

__all__ = ["KeptRequests", "ObligationTerms"]


class ObligationTerms(Protocol):
    """The obligations file in force, as the rows' reader needs it to show the requests
    answered at once (``obligations.ObligationSet``)."""

    @property
    def version(self) -> str: ...

    def due(self, obligation_id: str, events: Mapping[str, datetime]) -> datetime | None:
        """When the deadline ``obligation_id`` ends, given when ``events`` happened."""
        ...


class KeptRequests(Protocol):
    """What the data lifecycle purges and erases of an exchange's kept request (ADR
    0038): the exchange room decides what a request is cut to and whom it is about
    (``exchange.requests.KEPT_REQUESTS``)."""

    def minimised(self, document: dict[str, Any], *, keep_member: bool = True) -> dict[str, Any]:
        """``document`` cut to what the exchange's audit trail needs (the member's id
        too unless ``keep_member`` is False: the member was erased)."""
        ...

    def is_erased(self, document: dict[str, Any]) -> bool:
        """Whether ``document`` was cut with its member's id already (an erasure)."""
        ...

    def member_id(self, document: dict[str, Any]) -> str | None:
        """Our member id in a kept request, whole or minimised (None once erased)."""
        ...

    def member_key(self, client_id: str, member_id: str) -> str:
        """The key the client's member's exchanges and received data are held under."""
        ...
