"""The one error tree of payerbridge.

    PayerBridgeError
    ├── InvalidInput           the request or file is not acceptable as sent
    │   ├── MalformedContent   not parseable at all (bad JSON, wrong shape)
    │   ├── PayloadTooLarge
    │   ├── OAuthError         the token or registration endpoint refuses, answered in
    │   │                      OAuth's own form (RFC 6749 5.2), not an OperationOutcome
    │   └── CodeSetError       a sensitive code-set document that cannot be used
    ├── NotAcceptable          the client asked for a format we do not produce
    ├── UnsupportedMediaType   the client sent a format we do not read
    ├── Unauthenticated        no or wrong credentials for an endpoint that needs them
    │   └── CertificateRejected    a UDAP certificate chain we do not trust
    ├── Forbidden              authenticated, but not allowed to do this
    ├── NotFound
    ├── Conflict
    │   └── StoreConflict      a write met a row that already holds its unique key
    ├── PreconditionFailed     a change made on a version the resource no longer has (412)
    ├── PreconditionRequired   a change that must name the version it was made on (428)
    ├── Busy                   the same request is being processed; retry shortly
    ├── TooManyAttempts        brute-force guard (429, with when to try again)
    │   └── RateLimited        a client over its rate for one operation
    ├── UnprocessableRequest   well-formed, but it names something we cannot act on
    ├── MatchError
    │   ├── NoMatch
    │   │   └── WrongCardGuess     demographics tried with another card: no review case
    │   └── AmbiguousMatch
    ├── ConsentError
    │   └── ConsentDenied      the consent does not permit this (422 at $member-match)
    │       └── DisclosureDenied   ... on data access (403)
    ├── PartnerError
    │   ├── PartnerUnavailable     retryable: down, timed out, 429, 5xx
    │   ├── PartnerAuthRejected    401/403: refresh credentials, then try once more
    │   └── PartnerRejected        terminal: a contract or schema error
    ├── IllegalTransition      a workflow state change the state machine forbids
    ├── StoreUnavailable       the database did not answer (restart, failover, lock
    │                          held too long): retryable
    ├── AuditChainBroken       the stored audit chain does not check out
    ├── DataKeyUnavailable     a sealed column cannot be opened: its data key is unknown,
    │                          the key-encryption key is lost or wrong, or the value altered
    ├── SecondConnection       a unit of work's thread asked the pool for another
    │                          connection: a bug, refused before it can stall the pool
    └── MappingError

The core raises these; only ``fhir/outcome.py`` decides how each one looks on
the wire (HTTP status, OperationOutcome issue code) and ``cli`` picks exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AmbiguousMatch",
    "AuditChainBroken",
    "SecondConnection",
    "Busy",
    "CertificateRejected",
    "CodeSetError",
    "ComplianceFileError",
    "Conflict",
    "LegalHoldActive",
    "ConsentDenied",
    "DataKeyUnavailable",
    "ConsentError",
    "DisclosureDenied",
    "Forbidden",
    "Gone",
    "IllegalTransition",
    "InvalidInput",
    "Issue",
    "MalformedContent",
    "MappingError",
    "MatchError",
    "MatchUnderReview",
    "NoMatch",
    "NotAcceptable",
    "NotFound",
    "OAuthError",
    "OAuthErrorCode",
    "PartnerAuthRejected",
    "PartnerError",
    "PartnerRejected",
    "PartnerUnavailable",
    "PayerBridgeError",
    "PayloadTooLarge",
    "PreconditionFailed",
    "PreconditionRequired",
    "StoreConflict",
    "StoreUnavailable",
    "RateLimited",
    "TooManyAttempts",
    "Unauthenticated",
    "UnprocessableRequest",
    "UnsupportedMediaType",
    "WrongCardGuess",
]


@dataclass(frozen=True)
class Issue:
    """One problem, told so that a person can act on it.

    ``expression`` is a FHIRPath-like location (``Parameters.parameter[0]``) or a
    JSON field path; ``code`` overrides the issue code of the error class.
    Never put member demographics or identifiers in ``text``.
    """

    text: str
    expression: str | None = None
    code: str | None = None


class PayerBridgeError(Exception):
    """Base of every error payerbridge raises on purpose.

    ``reason_code`` names it for people and machines: the OperationOutcome carries it
    (with a link to its runbook, ``docs/runbooks/<code>.md``), so does the CLI. Each class
    has its own; ``ConsentDenied`` and ``OAuthError`` carry the one of the instance."""

    reason_code = "internal-error"  # what nothing more specific says: the 500

    def __init__(self, text: str, *, issues: list[Issue] | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.issues: list[Issue] = issues if issues else [Issue(text)]


class InvalidInput(PayerBridgeError):
    reason_code = "invalid-input"


class MalformedContent(InvalidInput):
    reason_code = "malformed-content"


class PayloadTooLarge(InvalidInput):
    reason_code = "payload-too-large"


class OAuthErrorCode(StrEnum):
    """The error codes our token and registration endpoints answer with: RFC 6749 5.2,
    RFC 7591 3.2.2 and UDAP Dynamic Client Registration (``invalid_signed_metadata``,
    ``unapproved_software_statement``)."""

    INVALID_REQUEST = "invalid_request"
    INVALID_CLIENT = "invalid_client"
    INVALID_GRANT = "invalid_grant"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    INVALID_SCOPE = "invalid_scope"
    INVALID_CLIENT_METADATA = "invalid_client_metadata"
    INVALID_SOFTWARE_STATEMENT = "invalid_software_statement"
    UNAPPROVED_SOFTWARE_STATEMENT = "unapproved_software_statement"
    INVALID_SIGNED_METADATA = "invalid_signed_metadata"


class OAuthError(InvalidInput):
    """An answer of the token or registration endpoint in OAuth's own error form (RFC 6749
    5.2, RFC 7591 3.2.2), not an OperationOutcome: ``error`` is the OAuth error code,
    ``status`` the HTTP status (400 unless the RFC says otherwise, 401 for
    ``invalid_client``)."""

    reason_code = OAuthErrorCode.INVALID_REQUEST.value

    def __init__(self, error: OAuthErrorCode, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = str(error)
        self.reason_code = self.error
        self.description = description
        self.status = status


class CodeSetError(InvalidInput):
    """A code-set document that cannot be used, with where it is wrong."""

    reason_code = "code-set-invalid"


class ComplianceFileError(InvalidInput):
    """An obligations or business-calendar file that cannot be used, with where it is
    wrong (``compliance``)."""

    reason_code = "compliance-file-invalid"


class NotAcceptable(PayerBridgeError):
    reason_code = "not-acceptable"


class UnsupportedMediaType(PayerBridgeError):
    reason_code = "unsupported-media-type"


class Unauthenticated(PayerBridgeError):
    reason_code = "unauthenticated"


class CertificateRejected(Unauthenticated):
    """The chain is not one we trust; ``reason`` says why, for a person to act on."""

    reason_code = "certificate-rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Forbidden(PayerBridgeError):
    reason_code = "forbidden"


class NotFound(PayerBridgeError):
    reason_code = "not-found"


class Conflict(PayerBridgeError):
    reason_code = "request-conflict"


class LegalHoldActive(Conflict):
    """A member under a legal hold: their records must be kept, so erasure is refused
    until every hold on them is released (ADR 0038)."""

    reason_code = "legal-hold-active"


class PreconditionFailed(PayerBridgeError):
    """A change sent with the version it was made on (If-Match), which the resource no
    longer has: someone changed it since the sender read it (RFC 9110 13.1.1)."""

    reason_code = "precondition-failed"


class PreconditionRequired(PayerBridgeError):
    """A change that must say which version it was made on, sent without one
    (RFC 6585 3): without it a stale page could overwrite a newer change."""

    reason_code = "precondition-required"


class Gone(PayerBridgeError):
    """It existed, and its time is up (a bulk job's files past their expiry)."""

    reason_code = "gone"


class StoreConflict(Conflict):
    """The store refused a write that collides with a unique key (a concurrent twin won);
    the store translates its driver's integrity errors into this."""

    reason_code = "store-conflict"


class StoreUnavailable(PayerBridgeError):
    """The database could not run a statement now (connection lost, SQLite busy past its
    timeout, a failover); the store translates its driver's operational errors into
    this, so callers retry without knowing which database runs underneath."""

    reason_code = "store-unavailable"
    retry_after_seconds = 1


class Busy(PayerBridgeError):
    reason_code = "busy"
    retry_after_seconds = 1


class UnprocessableRequest(PayerBridgeError):
    reason_code = "unprocessable"


class MatchError(PayerBridgeError):
    """$member-match found no single member; ``decision_id`` names the stored decision."""

    reason_code = "no-match"

    def __init__(
        self, text: str, *, decision_id: str | None = None, issues: list[Issue] | None = None
    ) -> None:
        super().__init__(text, issues=issues)
        self.decision_id = decision_id


class NoMatch(MatchError):
    reason_code = "no-match"


class WrongCardGuess(NoMatch):
    """Demographics this client tried with another card within the card guard's window
    (HRex mm-7), which only a reviewer could have matched: answered as no match, with no
    decision stored and no review case opened (a guessed card reaches no reviewer). On the
    wire it is NoMatch, reason code and all: the guesser learns nothing more."""

    reason_code = NoMatch.reason_code  # said here: the same code on purpose


class AmbiguousMatch(MatchError):
    reason_code = "multiple-matches"


class MatchUnderReview(MatchError):
    """The request fits a member only on evidence a person must look at; a case is open."""

    reason_code = "match-under-review"

    def __init__(
        self, text: str, *, decision_id: str | None = None, review_id: str | None = None
    ) -> None:
        super().__init__(text, decision_id=decision_id)
        self.review_id = review_id


class TooManyAttempts(PayerBridgeError):
    """Brute-force guard (HRex mm-7): the same demographics tried with too many cards;
    ``retry_after_seconds``: when enough of them have left the window for a retry."""

    reason_code = "too-many-attempts"

    def __init__(self, text: str, *, retry_after_seconds: int) -> None:
        super().__init__(text)
        self.retry_after_seconds = retry_after_seconds


class RateLimited(TooManyAttempts):
    """A client called one operation more often than its rate allows; ``subject`` is
    whose bucket was empty (a client id, or ``address:...`` before there is a client)."""

    reason_code = "client-rate-limited"

    def __init__(self, text: str, *, retry_after_seconds: int, subject: str | None = None) -> None:
        super().__init__(text, retry_after_seconds=retry_after_seconds)
        self.subject = subject


class ConsentError(PayerBridgeError):
    reason_code = "consent-error"


class ConsentDenied(ConsentError):
    """A consent decision said no; ``reason`` is its machine-readable code (e.g. ``expired``)."""

    reason_code = "refused"  # a refusal that gave no reason (a partner's, say)

    # ``reason`` has a default so that the error survives pickling (DBOS records steps).
    def __init__(
        self, text: str, *, reason: str = "refused", issues: list[Issue] | None = None
    ) -> None:
        super().__init__(text, issues=issues)
        self.reason = reason
        self.reason_code = reason


class DisclosureDenied(ConsentDenied):
    pass


class PartnerError(PayerBridgeError):
    """A partner payer did not give us what we asked for."""

    reason_code = "partner-error"

    def __init__(
        self, text: str, *, status: int | None = None, issues: list[Issue] | None = None
    ) -> None:
        super().__init__(text, issues=issues)
        self.status = status


class PartnerUnavailable(PartnerError):
    reason_code = "partner-unavailable"

    def __init__(
        self, text: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(text, status=status)
        self.retry_after = retry_after  # seconds the partner asked us to wait, if it did


class PartnerAuthRejected(PartnerError):
    reason_code = "partner-unauthorized"


class PartnerRejected(PartnerError):
    reason_code = "partner-error"


class IllegalTransition(PayerBridgeError):
    reason_code = "illegal-transition"


class AuditChainBroken(PayerBridgeError):
    """The stored chain does not check out: nothing is signed over it."""

    reason_code = "audit-chain-broken"


class DataKeyUnavailable(PayerBridgeError):
    """A sealed value cannot be opened, or sealing cannot start: the key-encryption key
    is missing or is not the one the data keys were wrapped with, a value names a data
    key the database does not hold, or a value was altered or moved (ADR 0039). Nothing
    is matched on what cannot be read."""

    reason_code = "data-key-unavailable"


class SecondConnection(PayerBridgeError):
    """A thread asked the pool for a connection while a unit of work it runs holds one
    (store.engines): under load every unit could wait so for one that never comes."""

    reason_code = "second-connection"


class MappingError(PayerBridgeError):
    reason_code = "mapping-error"
