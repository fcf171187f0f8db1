"""Outbound exchanges (new-payer role): the request, its lifecycle and its use cases."""

from payerbridge.exchange.model import (
    TERMINAL_STATES,
    ConsentGrant,
    ExchangeRequest,
    ExchangeState,
    check_transition,
)

__all__ = [
    "TERMINAL_STATES",
    "ConsentGrant",
    "ExchangeRequest",
    "ExchangeState",
    "check_transition",
]
