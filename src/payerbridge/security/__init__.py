"""Who may call us: the authorization server's clients, scopes and tokens (ADR 0009)."""

from payerbridge.security.model import (
    AUDITOR_SCOPE,
    EXCHANGES_SCOPE,
    MEMBER_MATCH_SCOPE,
    OPERATOR_SCOPE,
    OAuthError,
    Principal,
    RegisteredClient,
)

__all__ = [
    "AUDITOR_SCOPE",
    "EXCHANGES_SCOPE",
    "MEMBER_MATCH_SCOPE",
    "OPERATOR_SCOPE",
    "OAuthError",
    "Principal",
    "RegisteredClient",
]
