"""A plan's FHIR R4 server with quirks, for the tests and the sandbox: what a live
FHIR-server source reads (``payerbridge sandbox fhir-source``).

It serves ``quirks.quirky_population`` (deterministic by seed) under ``/fhir``:

- ``GET /fhir/metadata`` (its CapabilityStatement: ``_lastUpdated`` and ``$export``
  unless switched off) and ``/fhir/.well-known/smart-configuration``;
- ``POST /auth/token``: SMART Backend Services, ``client_credentials`` with a
  ``private_key_jwt`` assertion checked against the registered client's JWK Set;
- ``GET /fhir/Patient/<id>``, ``GET /fhir/<Type>?patient=<id>&_count=N&_lastUpdated=gtT``
  (``next`` links), ``GET /fhir/Patient?_count=N`` (every member);
- ``GET /fhir/Patient/$export?_type=Patient[&_since=T]`` (Bulk Data: 202, status, NDJSON
  files that need the token);
- ``POST /fhir``: a transaction Bundle, as a destination takes it (``fhir_written``: all
  or nothing, conditional updates and creates, every reference held; a token with a
  write scope such as ``system/*.write``); what it took is found by searches too
  (``GET /fhir/<Type>?identifier=system|value``, ``GET /fhir/<Type>?_count=N``) and
  counted per type by ``GET /fhir/_written`` (no token: a test double's count).

Test controls (no token; a test double, never a product endpoint): ``GET|POST
/_control`` reads or sets how it misbehaves, ``POST /_control/records`` adds a
resource to a member after start, ``GET /_control/written/<Type>`` lists what it took
as a destination of a type, ``POST /_control/reset`` puts everything back::

    {"mode": "normal" | "down" | "slow" | "fail-page" | "bad-page",
     "delay": 5,             # slow: seconds added to each request
     "page": 2,              # fail-page / bad-page: from which search page on
     "types": ["Observation"]}  # only these types' searches (default: every request)

``down`` answers 503 to everything but the controls; ``fail-page`` answers 500 from
``page`` on; ``bad-page`` answers a page that is not a Bundle; ``refuse-writes`` answers
every transaction 422 with an OperationOutcome (``processing``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payerbridge_tools.sandbox.fhir_source_state import Control, FhirSourceState
from payerbridge_tools.sandbox.fhir_written import TransactionRefused

__all__ = ["FhirSourceOptions", "build_app"]

FHIR = "application/fhir+json"


@dataclass
class FhirSourceOptions:
    """How the server is built: its members, its registered clients (``client_id`` →
    public JWK Set; none: it asks no token), what its CapabilityStatement offers."""

    members: int = 20
    seed: int = 42
    payer: int = 0  # whose population it serves: this old payer of a network of ``payers``
    payers: int = 1
    as_of: date = date(2025, 1, 1)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_seconds: int = 300
    export: bool = True
    last_updated: bool = True
    export_retry_after: int = 1  # seconds the export status asks the client to wait
    export_file_size: int = 1000  # Patients per NDJSON file
    control: Control = field(default_factory=Control)


def _fhir(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(body), status, media_type=FHIR, headers=headers)


def _outcome(status: int, code: str, text: str, **headers: str) -> Response:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return _fhir({"resourceType": "OperationOutcome", "issue": [issue]}, status, **headers)


def build_app(options: FhirSourceOptions | None = None) -> Starlette:
    """The server as an ASGI app (run it with uvicorn, or call it in-process)."""
    state = FhirSourceState(options or FhirSourceOptions())

    async def guarded(request: Request, resource_type: str | None, page: int) -> Response | None:
        """The fault the control asks for, or the refusal of a missing token; None to go on."""
        refused = await _fault(state.control, resource_type, page)
        if refused is not None:
            return refused
        if not state.authorized(request.headers.get("authorization"), resource_type):
            return _outcome(401, "login", "a valid bearer token with a read scope is needed")
        return None

    async def metadata(request: Request) -> Response:
        return _fhir(state.capability_statement(_base(request)))

    async def smart_configuration(request: Request) -> Response:
        origin = str(request.base_url).rstrip("/")
        return Response(
            orjson.dumps(
                {
                    "token_endpoint": f"{origin}/auth/token",
                    "grant_types_supported": ["client_credentials"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384"],
                    "scopes_supported": ["system/*.read", "system/*.rs", "system/*.write"],
                    "capabilities": ["client-confidential-asymmetric"],
                }
            ),
            media_type="application/json",
        )

    async def token(request: Request) -> Response:
        refused = await _fault(state.control, None, 1)
        if refused is not None:
            return refused
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        audience = str(request.url).split("?", 1)[0]
        status, body = state.issue_token(form, audience)
        return Response(orjson.dumps(body), status, media_type="application/json")

    async def read(request: Request) -> Response:
        resource_type = request.path_params["type"]
        refused = await guarded(request, resource_type, 1)
        if refused is not None:
            return refused
        found = state.read(resource_type, request.path_params["id"])
        if found is None:
            return _outcome(404, "not-found", f"no {resource_type} with that id")
        return _fhir(found)

    async def search(request: Request) -> Response:
        resource_type = request.path_params["type"]
        params = dict(request.query_params)
        page = int(params.get("_offset", 0)) // max(1, int(params.get("_count", 50))) + 1
        refused = await guarded(request, resource_type, page)
        if refused is not None:
            return refused
        fault = state.control.page_fault(resource_type, page)
        if fault == "fail-page":
            return _outcome(500, "exception", "page failed for the test")
        if fault == "bad-page":
            return Response("<html>Service temporarily degraded</html>", media_type="text/html")
        status, body = state.search(resource_type, params, f"{_base(request)}")
        return _fhir(body, status)

    async def export(request: Request) -> Response:
        refused = await guarded(request, "Patient", 1)
        if refused is not None:
            return refused
        if not state.options.export:
            return _outcome(404, "not-supported", "this server has no $export")
        if request.headers.get("prefer") != "respond-async":
            return _outcome(400, "invalid", "Prefer: respond-async is required")
        since = request.query_params.get("_since")
        job = state.start_export(since, str(request.url))
        return Response(
            status_code=202, headers={"Content-Location": f"{_base(request)}/_export/{job}"}
        )

    async def export_status(request: Request) -> Response:
        refused = await guarded(request, None, 1)
        if refused is not None:
            return refused
        job = request.path_params["job"]
        if request.method == "DELETE":
            state.exports.pop(job, None)
            return Response(status_code=202)
        status, manifest = state.export_status(job, _base(request))
        if status == 202:
            return Response(
                status_code=202,
                headers={"Retry-After": str(state.options.export_retry_after), "X-Progress": "50%"},
            )
        if status == 404:
            return _outcome(404, "not-found", "no such export")
        return Response(orjson.dumps(manifest), media_type="application/json")

    async def export_file(request: Request) -> Response:
        refused = await guarded(request, "Patient", 1)
        if refused is not None:
            return refused
        lines = state.export_file(request.path_params["job"], int(request.path_params["n"]))
        if lines is None:
            return _outcome(404, "not-found", "no such file")
        return Response(lines, media_type="application/fhir+ndjson")

    async def transaction(request: Request) -> Response:
        refused = await _fault(state.control, None, 1)
        if refused is not None:
            return refused
        if state.control.mode == "refuse-writes":
            return _outcome(422, "processing", "writes refused for the test")
        try:
            bundle = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _outcome(400, "invalid", "the body is not JSON")
        kinds = {
            str((e.get("resource") or {}).get("resourceType"))
            for e in (bundle.get("entry") or [] if isinstance(bundle, dict) else [])
            if isinstance(e, dict)
        }
        authorization = request.headers.get("authorization")
        if not all(state.authorized(authorization, k, write=True) for k in kinds or {"*"}):
            return _outcome(401, "login", "a valid bearer token with a write scope is needed")
        try:
            answer = state.written.transact(bundle, datetime.now(UTC))
        except TransactionRefused as exc:
            return _outcome(exc.status, exc.code, exc.text)
        return _fhir(answer)

    async def written(_request: Request) -> Response:
        return Response(orjson.dumps(state.written.summary()), media_type="application/json")

    async def control(request: Request) -> Response:
        if request.method == "POST":
            problem = state.control.set(await request.json())
            if problem:
                return Response(orjson.dumps({"error": problem}), 400)
        return Response(orjson.dumps(state.report()), media_type="application/json")

    async def add_record(request: Request) -> Response:
        body = await request.json()
        resource = body.get("resource") if isinstance(body, dict) else None
        if not isinstance(resource, dict):
            return Response(orjson.dumps({"error": 'give {"resource": {...}}'}), 400)
        return _fhir(state.add(resource, datetime.now(UTC)), 201)

    async def written_of_type(request: Request) -> Response:
        kind = request.path_params["type"]
        return Response(orjson.dumps(state.written.of_type(kind)), media_type="application/json")

    async def reset(_request: Request) -> Response:
        state.reset()
        return Response(orjson.dumps(state.report()), media_type="application/json")

    async def health(_request: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/_control", control, methods=["GET", "POST"]),
            Route("/_control/records", add_record, methods=["POST"]),
            Route("/_control/reset", reset, methods=["POST"]),
            Route("/_control/written/{type}", written_of_type),
            Route("/auth/token", token, methods=["POST"]),
            Route("/fhir", transaction, methods=["POST"]),
            Route("/fhir/_written", written),
            Route("/fhir/metadata", metadata),
            Route("/fhir/.well-known/smart-configuration", smart_configuration),
            Route("/fhir/Patient/$export", export),
            Route("/fhir/_export/{job}", export_status, methods=["GET", "DELETE"]),
            Route("/fhir/_export/{job}/{n:int}.ndjson", export_file),
            Route("/fhir/{type}/{id}", read),
            Route("/fhir/{type}", search),
        ]
    )


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"


async def _fault(control: Control, resource_type: str | None, page: int) -> Response | None:
    """``down`` and ``slow``, for every request (or those of ``types``)."""
    if not control.applies_to(resource_type):
        return None
    if control.mode == "down":
        return _outcome(503, "transient", "down for the test", **{"Retry-After": "5"})
    if control.mode == "slow":
        await asyncio.sleep(control.delay)
    return None
