"""How each payerbridge error looks on the wire: HTTP status, severity, OperationOutcome issue code.

Each issue also carries the error's reason code and its runbook's address (``fhir/reasons.py``).

This table is the single place that decides it; the API handler and the CLI read it.
HRex requires 422 for no match, multiple matches and consent that cannot be honoured.
An ``OAuthError`` is answered in OAuth's own form (RFC 6749 5.2), not as an
OperationOutcome, with the status the error carries; its row says so (``WireForm.OAUTH``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from payerbridge import errors
from payerbridge.fhir import codes
from payerbridge.fhir.reasons import reason_coding, runbook_extension

__all__ = [
    "ErrorRendering",
    "WireForm",
    "operation_outcome",
    "outcome_for",
    "rendering_for",
    "row_for",
]


class WireForm(Enum):
    """The shape of the answer's body."""

    OPERATION_OUTCOME = "OperationOutcome"
    OAUTH = "oauth"  # {"error": ..., "error_description": ...}, never cached


@dataclass(frozen=True)
class ErrorRendering:
    status: int
    severity: str
    code: str
    form: WireForm = WireForm.OPERATION_OUTCOME


# Most specific first: the first class an error is an instance of wins.
_TABLE: tuple[tuple[type[errors.PayerBridgeError], ErrorRendering], ...] = (
    (errors.PayloadTooLarge, ErrorRendering(413, "error", "too-long")),
    (errors.MalformedContent, ErrorRendering(400, "error", "structure")),
    # The token and registration endpoints: 400, or the status the error carries.
    (errors.OAuthError, ErrorRendering(400, "error", "invalid", WireForm.OAUTH)),
    # Only ever raised reading the operator's code sets, told as an InvalidInput.
    (errors.CodeSetError, ErrorRendering(400, "error", "invalid")),
    (errors.InvalidInput, ErrorRendering(400, "error", "invalid")),
    (errors.NotAcceptable, ErrorRendering(406, "error", "not-supported")),
    (errors.UnsupportedMediaType, ErrorRendering(415, "error", "not-supported")),
    # Never on the wire itself: UDAP answers it as the endpoint's OAuthError.
    (errors.CertificateRejected, ErrorRendering(401, "error", "security")),
    (errors.Unauthenticated, ErrorRendering(401, "error", "login")),
    (errors.Forbidden, ErrorRendering(403, "error", "forbidden")),
    (errors.NotFound, ErrorRendering(404, "error", "not-found")),
    (errors.Conflict, ErrorRendering(409, "error", "conflict")),
    (errors.PreconditionFailed, ErrorRendering(412, "error", "conflict")),
    (errors.PreconditionRequired, ErrorRendering(428, "error", "required")),
    (errors.Gone, ErrorRendering(410, "error", "deleted")),
    (errors.Busy, ErrorRendering(503, "error", "transient")),
    (errors.StoreUnavailable, ErrorRendering(503, "error", "transient")),
    (errors.UnprocessableRequest, ErrorRendering(422, "error", "business-rule")),
    (errors.NoMatch, ErrorRendering(422, "error", "not-found")),
    (errors.AmbiguousMatch, ErrorRendering(422, "error", "multiple-matches")),
    (errors.MatchUnderReview, ErrorRendering(422, "error", "business-rule")),
    (errors.TooManyAttempts, ErrorRendering(429, "error", "throttled")),
    (errors.DisclosureDenied, ErrorRendering(403, "error", "forbidden")),
    (errors.ConsentDenied, ErrorRendering(422, "error", "business-rule")),
    (errors.ConsentError, ErrorRendering(422, "error", "business-rule")),
    (errors.PartnerUnavailable, ErrorRendering(503, "error", "transient")),
    (errors.PartnerRejected, ErrorRendering(502, "error", "exception")),
    (errors.PartnerError, ErrorRendering(502, "error", "exception")),
    (errors.IllegalTransition, ErrorRendering(409, "error", "business-rule")),
    (errors.MappingError, ErrorRendering(500, "error", "exception")),
    # The CLI and the checkpoint schedule meet it, never a request: as the fallback.
    (errors.AuditChainBroken, ErrorRendering(500, "fatal", "exception")),
    (errors.SecondConnection, ErrorRendering(500, "fatal", "exception")),
    # Sealed data that cannot be opened (ADR 0039): refused, never matched on.
    (errors.DataKeyUnavailable, ErrorRendering(500, "fatal", "exception")),
)
_DEFAULT = ErrorRendering(500, "fatal", "exception")


def row_for(error_class: type[errors.PayerBridgeError]) -> ErrorRendering | None:
    """The table's row for errors of this class (the first row it is a subclass of);
    None when no row covers it and it falls to the default (a 500)."""
    for cls, rendering in _TABLE:
        if issubclass(error_class, cls):
            return rendering
    return None


def rendering_for(error: errors.PayerBridgeError) -> ErrorRendering:
    rendering = row_for(type(error)) or _DEFAULT
    if isinstance(error, errors.OAuthError):
        return replace(rendering, status=error.status)
    return rendering


def operation_outcome(
    issues: list[errors.Issue],
    *,
    severity: str,
    code: str,
    request_id: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """An OperationOutcome with one issue per problem; the request id lets support find the logs.

    ``reason``, the reason code, goes into ``details.coding`` as a Coding of ours, and the
    issue links its runbook (``fhir/reasons.py``); an error's own coding goes before it
    (``outcome_for``)."""
    rendered = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": severity,
            "code": issue.code or code,
            "details": {"text": issue.text},
        }
        if reason:
            entry["details"]["coding"] = [reason_coding(reason)]
            entry["extension"] = [runbook_extension(reason)]
        if issue.expression:
            entry["expression"] = [issue.expression]
        if request_id:
            entry["diagnostics"] = f"request-id: {request_id}"
        rendered.append(entry)
    return {"resourceType": "OperationOutcome", "issue": rendered}


def outcome_for(
    error: errors.PayerBridgeError, request_id: str | None = None
) -> tuple[int, dict[str, Any]]:
    rendering = rendering_for(error)
    body = operation_outcome(
        error.issues,
        severity=rendering.severity,
        code=rendering.code,
        request_id=request_id,
        reason=error.reason_code,
    )
    coding = _coding_of(error)
    if coding is not None:
        # First in ``details.coding``, so that a partner's software can tell a revoked
        # consent from an expired one, or a match under review from a refusal, without
        # reading the text; the reason code's Coding follows it.
        first = {"system": coding[0], "code": coding[1]}
        for entry in body["issue"]:
            entry["details"]["coding"] = [first, *entry["details"].get("coding", [])]
    return rendering.status, body


def _coding_of(error: errors.PayerBridgeError) -> tuple[str, str] | None:
    if isinstance(error, errors.ConsentDenied):
        return codes.CONSENT_DENY_REASON, error.reason
    if isinstance(error, errors.MatchUnderReview):
        return codes.MEMBER_MATCH_OUTCOME, "review"
    return None
