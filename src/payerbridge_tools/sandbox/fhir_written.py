"""What the sandbox FHIR server takes as a destination (``POST /fhir``, ADR 0053): FHIR R4
transaction Bundles, all or nothing, kept in a store of their own beside the population
it serves as a source (searches see both; ``GET /fhir/_written`` counts only these).

Each entry is a ``PUT``: ``Type/id`` (update as create), or a conditional update
``Type?identifier=system|value`` (no match: created with a new id; one: updated; more
than one: the whole transaction fails 412, as FHIR says). ``fullUrl``s (``urn:uuid:``)
referenced in the Bundle are replaced by the ids settled on, and conditional references
(``Type?identifier=...``) by the one resource they match (none, or several: 412).
Every write is a new version; ``versions`` counts them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from payerbridge.consent.labels import CONFIDENTIALITY
from payerbridge.fhir.resources import rewrite_references

__all__ = ["TransactionRefused", "WrittenStore", "parse_conditional"]


class TransactionRefused(Exception):
    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def parse_conditional(url: str) -> tuple[str, str, str] | None:
    """``Type?identifier=system|value`` as (type, system, value); None for another URL."""
    kind, sep, query = url.partition("?")
    if not sep or not query.startswith("identifier=") or "&" in query:
        return None
    token = query.removeprefix("identifier=")
    if token.count("|") != 1:
        raise TransactionRefused(400, "invalid", "identifier must be system|value")
    system, value = token.split("|")
    return kind, _unescape(unquote(system)), _unescape(unquote(value))


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


@dataclass
class WrittenStore:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: Counter[str] = field(default_factory=Counter)  # per type, every write
    transactions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def matching(self, kind: str, system: str, value: str) -> list[str]:
        return sorted(
            rid
            for (k, rid), r in self.resources.items()
            if k == kind and _has_identifier(r, system, value)
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
            return self._apply(targets, written, now)

    def _targets(self, entries: list[Any]) -> tuple[list[tuple[str, str, bool]], dict[str, str]]:
        targets: list[tuple[str, str, bool]] = []  # type, id, created
        urls: dict[str, str] = {}
        for entry in entries:
            request = entry.get("request") if isinstance(entry, dict) else None
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(request, dict) or not isinstance(resource, dict):
                raise TransactionRefused(400, "invalid", "each entry needs request and resource")
            if request.get("method") != "PUT":
                raise TransactionRefused(400, "not-supported", "only PUT entries are taken")
            url = str(request.get("url") or "")
            kind = str(resource.get("resourceType"))
            conditional = parse_conditional(url)
            if conditional is not None:
                if conditional[0] != kind:
                    raise TransactionRefused(400, "invalid", "the URL names another type")
                found = self.matching(*conditional)
                if len(found) > 1:
                    raise TransactionRefused(412, "multiple-matches", "several records match")
                rid = found[0] if found else uuid.uuid4().hex
                created = not found
            else:
                if url != f"{kind}/{resource.get('id')}":
                    raise TransactionRefused(400, "invalid", "PUT Type/id must name the resource")
                rid, created = (
                    str(resource["id"]),
                    (kind, str(resource["id"])) not in self.resources,
                )
            if any(t[:2] == (kind, rid) for t in targets):
                raise TransactionRefused(400, "duplicate", "two entries write one resource")
            targets.append((kind, rid, created))
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                urls[full_url] = f"{kind}/{rid}"
        return targets, urls

    def _resolved(self, resource: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
        def rewrite(reference: str) -> str:
            if reference in urls:
                return urls[reference]
            if reference.startswith("urn:uuid:"):
                raise TransactionRefused(400, "not-found", "a urn:uuid names no entry")
            conditional = parse_conditional(reference)
            if conditional is None:
                return reference
            found = self.matching(*conditional)
            if len(found) != 1:
                raise TransactionRefused(
                    412, "not-found", "a conditional reference does not resolve"
                )
            return f"{conditional[0]}/{found[0]}"

        resolved: dict[str, Any] = rewrite_references(resource, rewrite)
        return resolved

    def _apply(
        self, targets: list[tuple[str, str, bool]], written: list[dict[str, Any]], now: datetime
    ) -> dict[str, Any]:
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        answers = []
        for (kind, rid, created), resource in zip(targets, written, strict=True):
            previous = self.resources.get((kind, rid))
            version = int((previous or {}).get("meta", {}).get("versionId", 0)) + 1
            # The writer's meta kept (labels, source, profiles), the version ours.
            meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": stamp}
            self.resources[(kind, rid)] = {**resource, "id": rid, "meta": meta}
            self.versions[kind] += 1
            answers.append(
                {
                    "response": {
                        "status": "201 Created" if created else "200 OK",
                        "location": f"{kind}/{rid}/_history/{version}",
                    }
                }
            )
        self.transactions += 1
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
