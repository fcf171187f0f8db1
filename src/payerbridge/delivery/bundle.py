"""The FHIR transaction Bundles that carry an exchange's received record to the plan's
FHIR server (pure: no I/O).

Each resource we hold becomes one entry. One with a business identifier that no other
resource of its type in the record shares is a **conditional update** on it
(``PUT Type?identifier=system|value``, its ``id`` left out: the destination keeps its own
id for a record it already has, and gives one to a new record); any other is a ``PUT
Type/<our id>`` (our ids are stable, ADR 0029). Every entry's ``fullUrl`` is a
``urn:uuid`` derived from our ref, and a reference to a resource in the same Bundle is
rewritten to it, which the destination replaces with the id it settles on (FHIR R4
http.html#transaction). A reference to a resource we deliver in another Bundle (an
earlier one, or before: unchanged, not sent again) is a **conditional reference**
(``Type?identifier=system|value``) when the resource is written conditionally, else
``Type/<our id>``; references to anything else are left as they are.

A **Patient** is never written by a conditional update: an identifier a Patient carries
(a member id shared by a family, an SSN) may be another person's at the destination, and
the update would overwrite her. The member's one Patient (ADR 0054: the plan's own, or
ours for the member) goes as a **conditional create** on the rule that chose it, her
member id (typed MB) with her birth date and, where given, her gender
(``POST Patient``, ``ifNoneExist``): the destination's one Patient that agrees is hers,
none makes one, several refuse the whole transaction (412), so a person decides. Other
Patients (an old payer's, kept as source records) go by our id.

A reference that names nothing we hold (the old payer left it unresolved: a subscriber
it did not send, say) would name nothing at the destination either, and a server that
holds references (HAPI by default) refuses it, and with it the whole Bundle. It goes as
a **logical reference** to where it pointed, the old payer's URL of it as an identifier
(``urn:ietf:rfc:3986``) with its ``type``, its ``display`` kept: nothing resolved
wrongly, nothing lost.

A large record is cut into Bundles of at most ``max_entries`` entries, in an order where
what is referenced comes first (strongly connected resources, which refer to each other
in a circle, stay in one Bundle, which may then be larger): every conditional reference
names a resource the destination already has when it reads it.

Search values are escaped as FHIR says (``\\``, ``|``, ``,`` and ``$`` take a backslash)
and then percent-encoded, so the one unencoded ``|`` is the separator.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from payerbridge.fhir.codes import V2_0203
from payerbridge.fhir.resources import is_source_record, iter_references, rewrite_references

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "Entry",
    "Transaction",
    "conditional_url",
    "content_hash",
    "escape_token",
    "member_criteria",
    "plan_transactions",
    "reference_to",
]

DEFAULT_MAX_ENTRIES = 500
_URN_SPACE = uuid.UUID("6f1c1bb8-5c7e-4a59-9d77-8f0d3c1e2a10")


def escape_token(value: str) -> str:
    """A token search part, escaped as FHIR search says, then percent-encoded."""
    escaped = (
        value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    )
    return quote(escaped, safe="")


def conditional_url(kind: str, system: str, value: str) -> str:
    """``Type?identifier=system|value``, each part escaped."""
    return f"{kind}?identifier={escape_token(system)}|{escape_token(value)}"


def content_hash(resource: Mapping[str, Any]) -> str:
    """What the destination holds of the resource, as a hash: its content and its
    labels (``meta.security``: a label that changes is written again), without the
    rest of ``meta`` (which each write stamps), keys sorted."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    body["meta.security"] = (resource.get("meta") or {}).get("security") or []
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _ref(resource: Mapping[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _identifier(resource: Mapping[str, Any]) -> tuple[str, str] | None:
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict):
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and system and isinstance(value, str) and value:
                return system, value
    return None


def _targets(resources: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each held resource's conditional URL, for those whose identifier is theirs alone
    (never a Patient's: see the module)."""
    keyed = {
        _ref(r): (r["resourceType"], key)
        for r in resources
        if r["resourceType"] != "Patient" and (key := _identifier(r))
    }
    uses = Counter(keyed.values())
    return {
        ref: conditional_url(kind, *key)
        for ref, (kind, key) in keyed.items()
        if uses[(kind, key)] == 1
    }


def member_criteria(patient: Mapping[str, Any]) -> str | None:
    """The search that finds the member's Patient at the destination as ADR 0054 chose
    her here: her member id (an identifier typed MB), her birth date, and her gender where
    she has one; None when she lacks the member id or the birth date."""
    birth_date = patient.get("birthDate")
    if patient.get("resourceType") != "Patient" or not isinstance(birth_date, str):
        return None
    for identifier in patient.get("identifier") or ():
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        codes = (identifier.get("type") or {}).get("coding") or ()
        typed = any(c.get("system") == V2_0203 and c.get("code") == "MB" for c in codes)
        if typed and isinstance(system, str) and system and isinstance(value, str) and value:
            query = f"identifier={escape_token(system)}|{escape_token(value)}"
            query += f"&birthdate={quote(birth_date, safe='')}"
            gender = patient.get("gender")
            return query + (f"&gender={quote(gender, safe='')}" if isinstance(gender, str) else "")
    return None


def reference_to(resource: Mapping[str, Any], *, conditional: bool) -> str:
    """How a Bundle names a resource we wrote before: on its identifier (a member's
    Patient: on ``member_criteria``) when it was written conditionally, else by our id."""
    if not conditional:
        return _ref(resource)
    if resource["resourceType"] == "Patient":
        criteria = member_criteria(resource)
        return f"Patient?{criteria}" if criteria is not None else _ref(resource)
    key = _identifier(resource)
    return _ref(resource) if key is None else conditional_url(resource["resourceType"], *key)


@dataclass(frozen=True)
class Entry:
    ref: str  # our Type/id
    resource_type: str
    content_hash: str
    full_url: str
    url: str  # the request's: Type?identifier=..., Type/id, or Patient (created if none)
    resource: dict[str, Any]
    if_none_exist: str | None = None  # a conditional create's criteria (the member's Patient)

    def as_json(self) -> dict[str, Any]:
        request: dict[str, str] = {"method": "PUT", "url": self.url}
        if self.if_none_exist is not None:
            request = {"method": "POST", "url": self.url, "ifNoneExist": self.if_none_exist}
        return {"fullUrl": self.full_url, "resource": self.resource, "request": request}


@dataclass(frozen=True)
class Transaction:
    entries: tuple[Entry, ...]
    counts: dict[str, int] = field(default_factory=dict)  # per type

    def as_bundle(self) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [entry.as_json() for entry in self.entries],
        }


def _urn(ref: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_URN_SPACE, ref)}"


def _order(resources: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """The refs in groups (strongly connected components, Tarjan's), each after the
    groups it references; in sorted ref order where nothing says otherwise."""
    edges = {
        ref: sorted({t for t in iter_references(r) if t in resources and t != ref})
        for ref, r in resources.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(resources):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if position < len(targets):
                work.append((node, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def _chunks(groups: Iterable[list[str]], max_entries: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    for group in groups:
        if chunks[-1] and len(chunks[-1]) + len(group) > max_entries:
            chunks.append([])
        chunks[-1].extend(group)
    return [chunk for chunk in chunks if chunk]


def plan_transactions(
    held: Sequence[dict[str, Any]],
    *,
    written: Mapping[str, str] | None = None,
    elsewhere: Mapping[str, str] | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    absent: frozenset[str] = frozenset(),
) -> list[Transaction]:
    """The Bundles that carry ``held`` (our resources, with our ids) to the destination,
    in the order to post them, leaving out what ``written`` (our ref → content hash of
    what we last wrote there) says it holds unchanged. ``elsewhere``: resources not in
    ``held`` that we wrote there before (our ref → ``reference_to`` it), which
    references to them name; ``absent``: references that name nothing we hold, written
    as logical references (see the module)."""
    if max_entries < 1:
        raise ValueError("max_entries must be at least 1")
    by_ref = {_ref(r): r for r in held}
    conditional = _targets(list(by_ref.values()))
    # The member's one Patient, created unless the destination has her (see the module);
    # two that one search would find (twins on one card) go by our ids: none is guessed.
    searched = {
        ref: criteria
        for ref, r in by_ref.items()
        if not is_source_record(r) and (criteria := member_criteria(r)) is not None
    }
    uses = Counter(searched.values())
    created = {ref: criteria for ref, criteria in searched.items() if uses[criteria] == 1}
    conditional |= {ref: f"Patient?{criteria}" for ref, criteria in created.items()}
    before = written or {}
    outside = elsewhere or {}
    hashes = {ref: content_hash(r) for ref, r in by_ref.items()}
    sending = {ref: r for ref, r in by_ref.items() if before.get(ref) != hashes[ref]}
    transactions = []
    for chunk in _chunks(_order(sending), max_entries):
        inside = set(chunk)

        def rewrite(reference: str, inside: set[str] = inside) -> str:
            if reference in inside:
                return _urn(reference)
            if reference in by_ref:
                return conditional.get(reference, reference)
            return outside.get(reference, reference)

        entries = []
        for ref in chunk:
            resource = rewrite_references(_logical(sending[ref], absent), rewrite)
            url = conditional.get(ref)
            if url is not None:  # the destination settles the id
                resource = {k: v for k, v in resource.items() if k != "id"}
            kind, urn = ref.split("/", 1)[0], _urn(ref)
            if ref in created:
                entries.append(Entry(ref, kind, hashes[ref], urn, kind, resource, created[ref]))
            else:
                entries.append(Entry(ref, kind, hashes[ref], urn, url or ref, resource))
        counts = Counter(entry.resource_type for entry in entries)
        transactions.append(Transaction(tuple(entries), dict(sorted(counts.items()))))
    return transactions


_URI = "urn:ietf:rfc:3986"


def _logical(resource: dict[str, Any], absent: frozenset[str]) -> dict[str, Any]:
    """``resource`` with each reference in ``absent`` made a logical reference to the old
    payer's URL of it (the base its ``meta.source`` names); unchanged without one."""
    if not absent:
        return resource
    source = str((resource.get("meta") or {}).get("source") or "")
    base = source.rsplit("/", 2)[0] if source.startswith(("http://", "https://")) else None
    if base is None or source.count("/") < 4:
        return resource

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("reference")
        if isinstance(reference, str) and reference in absent:
            logical = {k: walk(v) for k, v in node.items() if k != "reference"}
            logical["type"] = reference.split("/", 1)[0]
            logical["identifier"] = {"system": _URI, "value": f"{base}/{reference}"}
            return logical
        return {key: walk(value) for key, value in node.items()}

    logical: dict[str, Any] = walk(resource)
    return logical
