"""What the quirky FHIR server (``fhir_source``) holds and decides, without HTTP: its
resources by member, its clients and tokens, its exports and its test controls."""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from payerbridge.errors import OAuthError
from payerbridge.security.assertions import (
    CLIENT_ASSERTION_TYPE,
    ClaimsCheck,
    read_unverified,
    verify_assertion,
)
from payerbridge_tools.sandbox.fhir_written import WrittenStore
from payerbridge_tools.sandbox.quirks import SERVED_TYPES, quirky_population

if TYPE_CHECKING:
    from payerbridge_tools.sandbox.fhir_source import FhirSourceOptions

__all__ = ["MODES", "Control", "FhirSourceState"]

MODES = ("normal", "down", "slow", "fail-page", "bad-page", "refuse-writes")
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]+)\.(read|rs|write|cud|cruds|\*)$")
_WRITES = frozenset({"write", "cud", "cruds", "*"})
_READS = frozenset({"read", "rs", "cruds", "*"})
_PATIENT_OF = ("subject", "patient", "beneficiary")


@dataclass
class Control:
    """How the server misbehaves, for the tests (see ``fhir_source``)."""

    mode: str = "normal"
    delay: float = 0.0
    page: int = 2
    types: frozenset[str] | None = None

    def set(self, body: Any) -> str | None:
        """Apply ``body``; what is wrong with it, else None."""
        if not isinstance(body, dict) or body.get("mode", "normal") not in MODES:
            return f"give {{'mode': one of {', '.join(MODES)}, 'delay', 'page', 'types'}}"
        types = body.get("types")
        if types is not None and not (
            isinstance(types, list) and all(isinstance(t, str) for t in types)
        ):
            return "types must be a list of resource types"
        self.mode = body.get("mode", "normal")
        self.delay = float(body.get("delay", 0))
        self.page = int(body.get("page", 2))
        self.types = frozenset(types) if types is not None else None
        return None

    def applies_to(self, resource_type: str | None) -> bool:
        return self.types is None or resource_type in self.types

    def page_fault(self, resource_type: str, page: int) -> str | None:
        if self.mode in ("fail-page", "bad-page") and page >= self.page:
            return self.mode if self.applies_to(resource_type) else None
        return None

    def as_json(self) -> dict[str, Any]:
        types = sorted(self.types) if self.types is not None else None
        return {"mode": self.mode, "delay": self.delay, "page": self.page, "types": types}


@dataclass
class _Export:
    patients: list[dict[str, Any]]
    request: str
    started: str
    polls: int = 0


@dataclass
class FhirSourceState:
    options: FhirSourceOptions
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    by_member: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    tokens: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    assertion_ids: set[str] = field(default_factory=set)
    exports: dict[str, _Export] = field(default_factory=dict)
    tokens_issued: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: WrittenStore = field(default_factory=WrittenStore)  # what it took as a destination

    def __post_init__(self) -> None:
        self.control = self.options.control
        self.written.served = self._served
        self.written.serves = lambda kind, rid: (kind, rid) in self.resources
        self._load()

    def _served(self, kind: str) -> list[dict[str, Any]]:
        """The population's resources of ``kind`` (called under ``written``'s lock)."""
        return [r for (k, _), r in list(self.resources.items()) if k == kind]

    def reset(self) -> None:
        """Back to the generated population, the control normal, no tokens."""
        self._load()
        self.control.set({"mode": "normal"})

    def _load(self) -> None:
        with self.lock:
            self.resources.clear()
            self.by_member.clear()
            self.tokens.clear()
            self.exports.clear()
            self.requests.clear()
            self.tokens_issued = 0
            self.written.clear()
            o = self.options
            for resource in quirky_population(
                o.members, o.seed, o.as_of, payer=o.payer, payers=o.payers
            ):
                self._put(resource)

    def _put(self, resource: dict[str, Any]) -> None:
        key = (resource["resourceType"], resource["id"])
        member = resource["id"] if key[0] == "Patient" else _member_of(resource)
        if key not in self.resources and member is not None:
            self.by_member.setdefault(member, []).append(key)
        self.resources[key] = resource

    def add(self, resource: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Add (or replace) a resource after start, as a new version."""
        kind = str(resource.get("resourceType"))
        with self.lock:
            rid = str(resource.get("id") or f"{kind.lower()}-added-{len(self.resources)}")
            previous = self.resources.get((kind, rid))
            version = int((previous or {}).get("meta", {}).get("versionId", 0)) + 1
            stamped = {
                **resource,
                "id": rid,
                "meta": {
                    "versionId": str(version),
                    "lastUpdated": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                },
            }
            self._put(stamped)
        return stamped

    def report(self) -> dict[str, Any]:
        return {
            "control": self.control.as_json(),
            "tokens_issued": self.tokens_issued,
            "requests": dict(self.requests),
            "members": sum(1 for kind, _ in self.resources if kind == "Patient"),
            "resources": len(self.resources),
        }

    # --- tokens ---------------------------------------------------------------------

    def issue_token(self, form: dict[str, str], audience: str) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            return 400, {"error": "invalid_request", "error_description": "no jwt-bearer assertion"}
        scopes = frozenset(form.get("scope", "").split())
        if not scopes or not all(_SCOPE.match(s) for s in scopes):
            return 400, {
                "error": "invalid_scope",
                "error_description": "ask system/<T>.read (or .write to write)",
            }
        try:
            unverified = read_unverified(form.get("client_assertion", ""))
            jwks = self.options.clients.get(unverified.client_id)
            if jwks is None:
                return 401, {"error": "invalid_client", "error_description": "unknown client"}
            claims = verify_assertion(
                form["client_assertion"],
                unverified.header,
                jwks,
                unverified.client_id,
                ClaimsCheck(audience, datetime.now(UTC), timedelta(seconds=30)),
            )
        except OAuthError as exc:
            return 401, {"error": exc.error, "error_description": exc.description}
        with self.lock:
            if claims.token_id in self.assertion_ids:
                return 401, {"error": "invalid_client", "error_description": "jti seen before"}
            self.assertion_ids.add(claims.token_id)
            token = secrets.token_urlsafe(24)
            self.tokens[token] = (time.time() + self.options.token_seconds, scopes)
            self.tokens_issued += 1
        return 200, {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.options.token_seconds,
            "scope": " ".join(sorted(scopes)),
        }

    def authorized(
        self, authorization: str | None, resource_type: str | None, *, write: bool = False
    ) -> bool:
        """Whether the token may read (``write``: write) ``resource_type`` (None: any)."""
        if not self.options.clients:
            return True
        token = (authorization or "").removeprefix("Bearer ").strip()
        expires, scopes = self.tokens.get(token, (0.0, frozenset()))
        if expires < time.time():
            return False
        allowing = _WRITES if write else _READS
        granted = {m[1] for s in scopes if (m := _SCOPE.match(s)) and m[2] in allowing}
        if write and resource_type is None:
            return "*" in granted
        return "*" in granted or resource_type is None or resource_type in granted

    # --- reads and searches ---------------------------------------------------------

    def _count(self, what: str) -> None:
        with self.lock:
            self.requests[what] = self.requests.get(what, 0) + 1

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        self._count(f"{resource_type} read")
        return self.resources.get((resource_type, resource_id))

    def search(
        self, resource_type: str, params: dict[str, str], base: str
    ) -> tuple[int, dict[str, Any]]:
        self._count(f"{resource_type} search")
        if resource_type not in SERVED_TYPES and not self.written.of_type(resource_type):
            return 404, _issue("not-supported", f"{resource_type} is not served here")
        known = {"patient", "_count", "_offset", "_lastUpdated", "_id", "identifier"}
        if not self.options.last_updated:
            known.discard("_lastUpdated")
        unknown = sorted(set(params) - known)
        if unknown:
            return 400, _issue("not-supported", f"unknown search parameters: {unknown}")
        count = max(1, min(1000, int(params.get("_count", 50))))
        offset = max(0, int(params.get("_offset", 0)))
        matches = self._matches(resource_type, params)
        page = matches[offset : offset + count]
        links = [{"relation": "self", "url": f"{base}/{resource_type}?{urlencode(params)}"}]
        if offset + count < len(matches):
            following = {**params, "_count": str(count), "_offset": str(offset + count)}
            links.append(
                {"relation": "next", "url": f"{base}/{resource_type}?{urlencode(following)}"}
            )
        return 200, {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/{resource_type}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in page
            ],
        }

    def _matches(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            if "patient" in params:
                keys = [
                    k for k in self.by_member.get(params["patient"], []) if k[0] == resource_type
                ]
            else:
                keys = [k for k in self.resources if k[0] == resource_type]
            found = [self.resources[k] for k in keys]
        if "patient" not in params:  # what it took as a destination, besides
            found += self.written.of_type(resource_type)
        if "identifier" in params:
            system, _, value = params["identifier"].partition("|")
            found = [
                r
                for r in found
                if any(
                    i.get("system") == system and i.get("value") == value
                    for i in r.get("identifier") or ()
                )
            ]
        if "_id" in params:
            found = [r for r in found if r["id"] in params["_id"].split(",")]
        if "_lastUpdated" in params:
            found = [
                r for r in found if _compares(r["meta"]["lastUpdated"], params["_lastUpdated"])
            ]
        return found

    # --- Bulk Data export -----------------------------------------------------------

    def start_export(self, since: str | None, request: str) -> str:
        with self.lock:
            patients = [r for (kind, _), r in self.resources.items() if kind == "Patient"]
        if since:
            patients = [p for p in patients if _compares(p["meta"]["lastUpdated"], f"gt{since}")]
        job = secrets.token_hex(8)
        self.exports[job] = _Export(patients, request, datetime.now(UTC).isoformat())
        return job

    def export_status(self, job: str, base: str) -> tuple[int, dict[str, Any] | None]:
        export = self.exports.get(job)
        if export is None:
            return 404, None
        export.polls += 1
        if export.polls == 1:
            return 202, None
        size = self.options.export_file_size
        files = range(0, len(export.patients), size)
        return 200, {
            "transactionTime": export.started,
            "request": export.request,
            "requiresAccessToken": bool(self.options.clients),
            "output": [
                {
                    "type": "Patient",
                    "url": f"{base}/_export/{job}/{n + 1}.ndjson",
                    "count": len(export.patients[start : start + size]),
                }
                for n, start in enumerate(files)
            ],
            "error": [],
        }

    def export_file(self, job: str, number: int) -> bytes | None:
        export = self.exports.get(job)
        size = self.options.export_file_size
        if export is None or number < 1 or (number - 1) * size >= max(1, len(export.patients)):
            return None
        chunk = export.patients[(number - 1) * size : number * size]
        return b"".join(orjson.dumps(p, option=orjson.OPT_APPEND_NEWLINE) for p in chunk)

    def capability_statement(self, base: str) -> dict[str, Any]:
        params = [{"name": "patient", "type": "reference"}]
        if self.options.last_updated:
            params.append({"name": "_lastUpdated", "type": "date"})
        resources = []
        for kind in SERVED_TYPES:
            resource: dict[str, Any] = {
                "type": kind,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
            }
            if kind == "Patient" and self.options.export:
                resource["operation"] = [
                    {
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                    }
                ]
            resources.append(resource)
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": self.options.as_of.isoformat(),
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "implementation": {"description": "sandbox FHIR source with quirks", "url": base},
            "rest": [{"mode": "server", "resource": resources}],
        }


def _member_of(resource: dict[str, Any]) -> str | None:
    for name in _PATIENT_OF:
        reference = (resource.get(name) or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


def _compares(value: str, condition: str) -> bool:
    """``_lastUpdated`` with its prefix (gt, ge, lt, le, eq)."""
    prefix, text = (condition[:2], condition[2:]) if condition[:2].isalpha() else ("eq", condition)
    try:
        left = datetime.fromisoformat(value.replace("Z", "+00:00"))
        right = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True
    if right.tzinfo is None:
        right = right.replace(tzinfo=UTC)
    return {
        "gt": left > right,
        "ge": left >= right,
        "lt": left < right,
        "le": left <= right,
    }.get(prefix, left == right)


def _issue(code: str, text: str) -> dict[str, Any]:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}
