"""Who may call us: the authorization server's clients, scopes and tokens (ADR 0009)."""

from payerbridge.security.model import (
    EXCHANGES_SCOPE,
    MEMBER_MATCH_SCOPE,
    OPERATOR_SCOPE,
    OAuthError,
    Principal,
    RegisteredClient,
)

__all__ = [
    "EXCHANGES_SCOPE",
    "MEMBER_MATCH_SCOPE",
    "OPERATOR_SCOPE",
    "OAuthError",
    "Principal",
    "RegisteredClient",
]
