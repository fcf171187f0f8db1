"""One handler per error family, each answering with an OperationOutcome (fhir/outcome.py),
or in OAuth's own form where the table says so (the token and registration endpoints)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from payerbridge.api.responses import FhirResponse, JsonResponse
from payerbridge.errors import (
    Busy,
    Forbidden,
    InvalidInput,
    Issue,
    MalformedContent,
    NotFound,
    OAuthError,
    PayerBridgeError,
    StoreUnavailable,
    TooManyAttempts,
    Unauthenticated,
)
from payerbridge.fhir.outcome import WireForm, operation_outcome, outcome_for, rendering_for
from payerbridge.fhir.reasons import runbook_url
from payerbridge.logging import current_request_id

__all__ = ["METHOD_NOT_ALLOWED", "install_error_handlers"]

_HTTP_CODES = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}
# The reason codes of the statuses the router answers itself (an unknown path, a method the
# path does not take), as the errors of ours that would say the same.
METHOD_NOT_ALLOWED = "method-not-allowed"
_HTTP_REASONS = {
    404: NotFound.reason_code,
    405: METHOD_NOT_ALLOWED,
    401: Unauthenticated.reason_code,
    403: Forbidden.reason_code,
}


async def _on_payerbridge_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PayerBridgeError)
    rendering = rendering_for(exc)
    if rendering.form is WireForm.OAUTH:
        assert isinstance(exc, OAuthError)
        return _oauth_answer(exc, rendering.status)
    status, body = outcome_for(exc, current_request_id())
    headers = {}
    if isinstance(exc, Busy | TooManyAttempts | StoreUnavailable):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return FhirResponse(body, status_code=status, headers=headers)


def _oauth_answer(exc: OAuthError, status: int) -> Response:
    """The token endpoint answers in OAuth's error form (RFC 6749 5.2), never cached."""
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_client"'
    # error_uri (RFC 6749 5.2): the page a person reads about the error, its runbook.
    return JsonResponse(
        {
            "error": exc.error,
            "error_description": exc.description,
            "error_uri": runbook_url(exc.error),
        },
        status_code=status,
        headers=headers,
    )


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        body = operation_outcome(
            [Issue("the request body is not valid JSON")],
            severity="error",
            code="structure",
            request_id=current_request_id(),
            reason=MalformedContent.reason_code,
        )
        return FhirResponse(body, status_code=400)
    issues = [
        Issue(
            f"{_location(tuple(e.get('loc', ())))}: {e.get('msg')}",
            _location(tuple(e.get("loc", ()))),
            "required" if e.get("type") == "missing" else None,
        )
        for e in errors
    ]
    body = operation_outcome(
        issues,
        severity="error",
        code="invalid",
        request_id=current_request_id(),
        reason=InvalidInput.reason_code,
    )
    return FhirResponse(body, status_code=400)


async def _on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    text = str(exc.detail) if exc.detail else "request failed"
    if exc.status_code == 404 and text == "Not Found":
        text = "no such endpoint; see GET /fhir/metadata for what this server implements"
    body = operation_outcome(
        [Issue(text)],
        severity="error",
        code=_HTTP_CODES.get(exc.status_code, "processing"),
        request_id=current_request_id(),
        reason=_HTTP_REASONS.get(exc.status_code),
    )
    return FhirResponse(body, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    # One handler for the whole tree, OAuthError included: Starlette finds it along the MRO.
    app.add_exception_handler(PayerBridgeError, _on_payerbridge_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
