"""What the sandbox FHIR server takes as a destination (``POST /fhir``, ADR 0053): FHIR R4
transaction Bundles, all or nothing, kept in a store of their own beside the population
it serves as a source (searches see both; ``GET /fhir/_written`` counts only these).

Each entry is a ``PUT`` or a ``POST``, as a FHIR server such as HAPI takes them:
- ``PUT Type/id``: update as create;
- ``PUT Type?criteria``: a conditional update (no match: created with a new id; one:
  updated; more than one: the whole transaction fails 412);
- ``POST Type`` with ``ifNoneExist: criteria``: a conditional create (no match: created;
  one: nothing written, the entry stands for that resource; more than one: 412).
Criteria are ``identifier=system|value``, with ``birthdate=`` and ``gender=`` beside it
for a Patient. ``fullUrl``s (``urn:uuid:``) referenced in the Bundle are replaced by the
ids settled on, and conditional references (``Type?criteria``) by the one resource they
match (none, or several: 412). As HAPI enforces by default, every other relative
reference (``Type/id``) must name a resource the server holds, here or in the Bundle:
else the transaction fails 400. Every write is a new version; ``versions`` counts them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from payerbridge.consent.labels import CONFIDENTIALITY
from payerbridge.fhir.resources import iter_references, rewrite_references

__all__ = ["Criteria", "TransactionRefused", "WrittenStore", "parse_conditional"]


class TransactionRefused(Exception):
    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


@dataclass(frozen=True)
class Criteria:
    """What a conditional URL searches: the type, one identifier, and for a Patient its
    birth date and gender when given."""

    kind: str
    system: str
    value: str
    birthdate: str | None = None
    gender: str | None = None

    def admits(self, resource: dict[str, Any]) -> bool:
        return (
            _has_identifier(resource, self.system, self.value)
            and (self.birthdate is None or resource.get("birthDate") == self.birthdate)
            and (self.gender is None or resource.get("gender") == self.gender)
        )


_SEARCHED = {"identifier", "birthdate", "gender"}


def parse_conditional(url: str) -> Criteria | None:
    """``Type?identifier=system|value[&birthdate=...][&gender=...]`` as its criteria;
    None for a URL without a query."""
    kind, sep, query = url.partition("?")
    return _criteria(kind, query) if sep else None


def _criteria(kind: str, query: str) -> Criteria:
    params: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name not in _SEARCHED or name in params:
            text = "conditional URLs search by identifier, birthdate and gender, each once"
            raise TransactionRefused(400, "not-supported", text)
        params[name] = value
    token = params.get("identifier")
    if token is None or token.count("|") != 1:
        raise TransactionRefused(400, "invalid", "identifier must be system|value")
    system, value = token.split("|")
    birthdate, gender = params.get("birthdate"), params.get("gender")
    return Criteria(
        kind,
        _unescape(unquote(system)),
        _unescape(unquote(value)),
        None if birthdate is None else unquote(birthdate),
        None if gender is None else unquote(gender),
    )


def _has_identifier(resource: dict[str, Any], system: str, value: str) -> bool:
    return any(
        isinstance(i, dict) and i.get("system") == system and i.get("value") == value
        for i in resource.get("identifier") or ()
    )


def _confidentiality(resource: dict[str, Any]) -> str:
    """The resource's HL7 confidentiality code, or ``none``."""
    for label in (resource.get("meta") or {}).get("security") or []:
        if label.get("system") == CONFIDENTIALITY:
            return str(label.get("code"))
    return "none"


@dataclass(frozen=True)
class _Target:
    kind: str
    id: str
    created: bool
    written: bool = True  # False: a conditional create that matched (nothing written)


@dataclass
class WrittenStore:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: Counter[str] = field(default_factory=Counter)  # per type, every write
    transactions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The resources of a type the server serves besides (its population as a source):
    # conditional URLs search them and references may name them.
    served: Callable[[str], list[dict[str, Any]]] = lambda _kind: []
    serves: Callable[[str, str], bool] = lambda _kind, _id: False

    def clear(self) -> None:
        with self.lock:
            self.resources.clear()
            self.versions.clear()
            self.transactions = 0

    def summary(self) -> dict[str, Any]:
        with self.lock:
            counts = Counter(kind for kind, _ in self.resources)
            labels = Counter(_confidentiality(r) for r in self.resources.values())
            return {
                "types": dict(sorted(counts.items())),
                "confidentiality": dict(sorted(labels.items())),  # "none": unlabelled
                "versions": dict(sorted(self.versions.items())),
                "transactions": self.transactions,
            }

    def matching(self, criteria: Criteria) -> list[str]:
        """The ids of what the criteria match, written here or served besides."""
        here = [rid for (k, rid), r in self.resources.items() if k == criteria.kind]
        served = [r["id"] for r in self.served(criteria.kind) if criteria.admits(r)]
        return sorted(
            {rid for rid in here if criteria.admits(self.resources[(criteria.kind, rid)])}
            | set(served)
        )

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for (k, _), r in sorted(self.resources.items()) if k == kind]

    def transact(self, bundle: Any, now: datetime) -> dict[str, Any]:
        """Apply the transaction whole, or raise TransactionRefused and apply nothing."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise TransactionRefused(400, "invalid", "a Bundle is expected")
        if bundle.get("type") != "transaction":
            raise TransactionRefused(400, "invalid", "only transaction Bundles are taken")
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise TransactionRefused(400, "invalid", "Bundle.entry must be a list")
        with self.lock:
            targets, urls = self._targets(entries)
            written = [self._resolved(e["resource"], urls) for e in entries]
            self._require_held(written, targets)
            return self._apply(targets, written, now)

    def _targets(self, entries: list[Any]) -> tuple[list[_Target], dict[str, str]]:
        targets: list[_Target] = []
        urls: dict[str, str] = {}
        for entry in entries:
            request = entry.get("request") if isinstance(entry, dict) else None
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(request, dict) or not isinstance(resource, dict):
                raise TransactionRefused(400, "invalid", "each entry needs request and resource")
            target = self._target(request, resource)
            if target.written and any((t.kind, t.id) == (target.kind, target.id) for t in targets):
                raise TransactionRefused(400, "duplicate", "two entries write one resource")
            targets.append(target)
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                urls[full_url] = f"{target.kind}/{target.id}"
        return targets, urls

    def _target(self, request: dict[str, Any], resource: dict[str, Any]) -> _Target:
        kind, url = str(resource.get("resourceType")), str(request.get("url") or "")
        method = request.get("method")
        if method == "POST":
            if url != kind:
                raise TransactionRefused(400, "invalid", "POST names the resource's type")
            condition = request.get("ifNoneExist")
            found = self.matching(_criteria(kind, str(condition))) if condition else []
            if len(found) > 1:
                raise TransactionRefused(412, "multiple-matches", "several records match")
            if found:
                return _Target(kind, found[0], created=False, written=False)
            return _Target(kind, uuid.uuid4().hex, created=True)
        if method != "PUT":
            raise TransactionRefused(400, "not-supported", "only PUT and POST entries are taken")
        conditional = parse_conditional(url)
        if conditional is not None:
            if conditional.kind != kind:
                raise TransactionRefused(400, "invalid", "the URL names another type")
            found = self.matching(conditional)
            if len(found) > 1:
                raise TransactionRefused(412, "multiple-matches", "several records match")
            return _Target(kind, found[0] if found else uuid.uuid4().hex, created=not found)
        if url != f"{kind}/{resource.get('id')}":
            raise TransactionRefused(400, "invalid", "PUT Type/id must name the resource")
        rid = str(resource["id"])
        return _Target(kind, rid, created=(kind, rid) not in self.resources)

    def _resolved(self, resource: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
        def rewrite(reference: str) -> str:
            if reference in urls:
                return urls[reference]
            if reference.startswith("urn:uuid:"):
                raise TransactionRefused(400, "not-found", "a urn:uuid names no entry")
            conditional = parse_conditional(reference)
            if conditional is None:
                return reference
            found = self.matching(conditional)
            if len(found) != 1:
                raise TransactionRefused(
                    412, "not-found", "a conditional reference does not resolve"
                )
            return f"{conditional.kind}/{found[0]}"

        resolved: dict[str, Any] = rewrite_references(resource, rewrite)
        return resolved

    def _require_held(self, written: list[dict[str, Any]], targets: list[_Target]) -> None:
        """Every relative reference names a resource held here, served besides, or
        written by this transaction (referential integrity, as HAPI enforces it)."""
        settled = {(t.kind, t.id) for t in targets}
        for resource in written:
            for reference in iter_references(resource):
                kind, slash, rid = reference.partition("/")
                if not slash or "/" in rid or not kind[:1].isupper() or ":" in kind:
                    continue  # absolute, contained or not a Type/id: not checked
                if (kind, rid) in settled or (kind, rid) in self.resources:
                    continue
                if self.serves(kind, rid):
                    continue
                raise TransactionRefused(
                    400, "not-found", f"a reference names {kind}/<id>, which this server lacks"
                )

    def _apply(
        self, targets: list[_Target], written: list[dict[str, Any]], now: datetime
    ) -> dict[str, Any]:
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        answers = []
        for target, resource in zip(targets, written, strict=True):
            kind, rid = target.kind, target.id
            if not target.written:  # a conditional create that matched: left as it is
                answers.append({"response": {"status": "200 OK", "location": f"{kind}/{rid}"}})
                continue
            previous = self.resources.get((kind, rid))
            version = int((previous or {}).get("meta", {}).get("versionId", 0)) + 1
            # The writer's meta kept (labels, source, profiles), the version ours.
            meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": stamp}
            self.resources[(kind, rid)] = {**resource, "id": rid, "meta": meta}
            self.versions[kind] += 1
            answers.append(
                {
                    "response": {
                        "status": "201 Created" if target.created else "200 OK",
                        "location": f"{kind}/{rid}/_history/{version}",
                    }
                }
            )
        self.transactions += 1
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
